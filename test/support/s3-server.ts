import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild, waitForLine } from './child-process.ts';

/**
 * A real S3-compatible server (s3rver from npm) in a child process on a free loopback port,
 * with one empty bucket, for tests and benchmarks. s3rver keeps objects in a temporary directory
 * that stop() removes. It runs with one crash fixed (s3rver-process.ts).
 *
 * What s3rver cannot show: it checks that the access key ID exists (only "S3RVER" does) but does
 * not verify SigV4 signatures, so a wrong secret is accepted; it keeps the storage class of single
 * PUTs but not of multipart uploads; it ignores conditional writes; it stores what it received of a
 * PUT whose client hung up midway (a cancelled upload) as if it were the object; a range read of an empty
 * object makes it promise one byte and hang up instead of answering 416.
 */
export interface S3Server {
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** How the server process fared: whether it exited (and how), and the tail of what it wrote to stderr. */
  readonly health: () => string;
  readonly stop: () => Promise<void>;
}

const PROCESS_ENTRY = fileURLToPath(new URL('./s3rver-process.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;

export async function startS3Server(options: { bucket?: string } = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'arca-test';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-s3rver-'));
  // s3rver encrypts list continuation tokens with DES, which OpenSSL 3 keeps in its legacy
  // provider: without it every listing of more than 1,000 keys fails with InternalError.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', PROCESS_ENTRY, '--directory', dir, '--bucket', bucket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderrTail = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderrTail = (stderrTail + text).slice(-4000); });
  try {
    const port = await waitForLine('s3rver', child, /S3rver listening on [^:]+:(\d+)/, START_TIMEOUT_MS);
    return {
      endpoint: `http://127.0.0.1:${port}`,
      bucket,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      health: () => {
        const state = child.exitCode !== null || child.signalCode !== null ? `s3rver exited (${String(child.exitCode ?? child.signalCode)})` : 's3rver running';
        return stderrTail === '' ? state : `${state}; its stderr ends: ${stderrTail}`;
      },
      stop: async () => {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
