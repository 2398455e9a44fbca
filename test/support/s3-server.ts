import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { stopChild, waitForLine } from './child-process.ts';

/**
 * A real S3-compatible server (s3rver from npm) in a child process on a free loopback port,
 * with one empty bucket, for tests and benchmarks. s3rver keeps objects in a temporary directory
 * that stop() removes.
 *
 * What s3rver cannot show: it checks that the access key ID exists (only "S3RVER" does) but does
 * not verify SigV4 signatures, so a wrong secret is accepted; it keeps the storage class of single
 * PUTs but not of multipart uploads; it ignores conditional writes; a range read of an empty
 * object makes it promise one byte and hang up instead of answering 416.
 */
export interface S3Server {
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly stop: () => Promise<void>;
}

const require = createRequire(import.meta.url);
const S3RVER_BIN = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
const START_TIMEOUT_MS = 20_000;

export async function startS3Server(options: { bucket?: string } = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'arca-test';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-s3rver-'));
  // s3rver encrypts list continuation tokens with DES, which OpenSSL 3 keeps in its legacy
  // provider: without it every listing of more than 1,000 keys fails with InternalError.
  const child = spawn(process.execPath, [
    '--openssl-legacy-provider', S3RVER_BIN, '--directory', dir, '--address', '127.0.0.1', '--port', '0', '--silent', '--no-vhost-buckets', '--configure-bucket', bucket,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await waitForLine('s3rver', child, /S3rver listening on [^:]+:(\d+)/, START_TIMEOUT_MS);
    return {
      endpoint: `http://127.0.0.1:${port}`,
      bucket,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
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
