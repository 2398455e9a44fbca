import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

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
    const port = await waitForLine(child, /S3rver listening on [^:]+:(\d+)/, START_TIMEOUT_MS);
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

/** Resolves with the first capture group of the first stdout line matching `pattern`. */
function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => { fail(new Error(`s3rver did not start within ${timeoutMs} ms: ${out}${err}`)); }, timeoutMs);
    const onOut = (data: string): void => {
      out += data;
      const match = pattern.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        child.off('exit', onExit);
        child.stdout?.off('data', onOut);
        child.stdout?.resume();
        resolve(match[1]);
      }
    };
    const onExit = (code: number | null): void => { fail(new Error(`s3rver exited with ${String(code)} before listening: ${out}${err}`)); };
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(e);
    };
    child.stdout?.setEncoding('utf8').on('data', onOut);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.once('exit', onExit);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve(); }); });
  child.kill('SIGTERM');
  const timer = setTimeout(() => { child.kill('SIGKILL'); }, 5_000);
  await exited;
  clearTimeout(timer);
}
