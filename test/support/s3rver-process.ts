import { unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

/**
 * The entry point of the s3rver child process that startS3Server (s3-server.ts) runs:
 * `node --openssl-legacy-provider s3rver-process.ts --directory DIR --bucket NAME`.
 * Prints "S3rver listening on ADDRESS:PORT" once it serves.
 *
 * It runs s3rver 3.7 with one fix. s3rver keeps each object as files in a directory per key
 * prefix, and its DELETE removes a prefix directory that it leaves empty. A PUT under the same
 * prefix at that moment opens its file in a directory that no longer exists, and the error event
 * of that file stream has no listener: the whole server crashes (seen in the S3 torture test, when
 * the last lease under leases/ was deleted while another process wrote its own). Here DELETE
 * leaves directories in place; an empty directory holds no keys, so listings are unchanged.
 */
interface FilesystemStoreLike {
  getResourcePath(bucket: string, key: string, resource: string): string;
}
interface S3rverOptions {
  readonly directory: string;
  readonly address: string;
  readonly port: number;
  readonly silent: boolean;
  readonly vhostBuckets: boolean;
  readonly configureBuckets: ReadonlyArray<{ readonly name: string; readonly configs: readonly Buffer[] }>;
}
type S3rverClass = new (options: S3rverOptions) => { run(): Promise<{ address: string; port: number }> };

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverClass;
const storeModule = require('s3rver/lib/stores/filesystem') as { prototype: FilesystemStoreLike & { deleteObject: unknown } };

storeModule.prototype.deleteObject = async function deleteObject(this: FilesystemStoreLike, bucket: string, key: string): Promise<void> {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map(async (resource) => {
    await unlink(this.getResourcePath(bucket, key, resource)).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
  }));
};

const { values } = parseArgs({ options: { directory: { type: 'string' }, bucket: { type: 'string' } } });
if (values.directory === undefined || values.bucket === undefined) throw new Error('usage: s3rver-process.ts --directory DIR --bucket NAME');
const { address, port } = await new S3rver({
  directory: values.directory, address: '127.0.0.1', port: 0, silent: true, vhostBuckets: false,
  configureBuckets: [{ name: values.bucket, configs: [] }],
}).run();
console.log(`S3rver listening on ${address}:${port}`);
