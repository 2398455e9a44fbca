import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { throwIfCanceled } from '../errors.ts';
import { makeDirs } from '../util/make-dirs.ts';
import {
  assertObjectName, contentParts, ObjectNotFoundError, ShortReadError, StorageError,
  type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage,
} from './storage.ts';

const TEMP_SUFFIX = '.arca-tmp';

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/**
 * A repository in a local directory. Writes go to a temporary file that is fsynced and renamed
 * into place, then the directory is fsynced, so a crash leaves either the whole object or none.
 */
export class LocalStorage implements Storage {
  readonly location: string;
  private readonly root: string;
  private readonly knownDirs = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  private pathOf(name: string): string {
    assertObjectName(name);
    return path.join(this.root, ...name.split('/'));
  }

  /**
   * A cancelled write stops before its rename (the only step that makes the object appear), so
   * the object is either whole or absent; reads and listings stop between their steps.
   */
  async put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    throwIfCanceled(options?.signal);
    const temp = `${this.pathOf(name)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    await this.land(name, temp, async () => {
      const handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await handle.writev(contentParts(data) as Uint8Array[]);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }, options?.signal);
  }

  /** Inside the repository's data directory, where listings skip its temporary names. */
  get spoolDir(): string {
    return path.join(this.root, 'data');
  }

  readonly putFile = async (name: string, file: string, options?: CallOptions): Promise<void> => {
    await this.land(name, file, () => syncPath(file, 'r+'), options?.signal);
  };

  /**
   * Makes object `name` from `file`: once its directory exists, `prepare` writes (or syncs) the
   * file, which is then renamed into place and the directory synced. On failure the file goes.
   */
  private async land(name: string, file: string, prepare: () => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    const target = this.pathOf(name);
    const dir = path.dirname(target);
    try {
      if (!this.knownDirs.has(dir)) {
        await makeDirs(dir);
        this.knownDirs.add(dir);
      }
      await prepare();
      throwIfCanceled(signal);
      await fsp.rename(file, target);
      await syncPath(dir, 'r');
    } catch (err) {
      await fsp.rm(file, { force: true });
      throwIfCanceled(signal);
      throw new StorageError(this.location, `write ${name}`, { cause: err });
    }
  }

  async get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    const file = this.pathOf(name);
    const signal = options?.signal;
    throwIfCanceled(signal);
    try {
      if (range === undefined) return await fsp.readFile(file, { signal });
      const handle = await fsp.open(file, 'r');
      try {
        const buf = Buffer.allocUnsafe(range.length);
        let got = 0;
        while (got < range.length) {
          const { bytesRead } = await handle.read(buf, got, range.length - got, range.offset + got);
          if (bytesRead === 0) throw new ShortReadError(this.location, name, range, got);
          got += bytesRead;
        }
        return buf;
      } finally {
        await handle.close();
      }
    } catch (err) {
      throwIfCanceled(signal);
      throw this.mapError(err, name, 'read');
    }
  }

  async stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    throwIfCanceled(options?.signal);
    try {
      const st = await fsp.stat(this.pathOf(name));
      return { name, size: st.size, modified: st.mtimeMs };
    } catch (err) {
      throw this.mapError(err, name, 'stat');
    }
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    // Walk only the directory that can hold the prefix, e.g. "data/" or "index/".
    const slash = prefix.lastIndexOf('/');
    const baseName = slash < 0 ? '' : prefix.slice(0, slash);
    const base = baseName === '' ? this.root : this.pathOf(baseName);
    yield* this.walk(base, baseName, prefix, options?.signal);
  }

  private async *walk(dir: string, dirName: string, prefix: string, signal: AbortSignal | undefined): AsyncIterable<ObjectInfo> {
    throwIfCanceled(signal);
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw new StorageError(this.location, `list ${dirName || '/'}`, { cause: err });
    }
    for (const entry of entries) {
      const name = dirName === '' ? entry.name : `${dirName}/${entry.name}`;
      if (entry.name.endsWith(TEMP_SUFFIX)) continue;
      if (entry.isDirectory()) {
        if (prefix.startsWith(`${name}/`) || name.startsWith(prefix)) yield* this.walk(path.join(dir, entry.name), name, prefix, signal);
      } else if (entry.isFile() && name.startsWith(prefix)) {
        const st = await fsp.stat(path.join(dir, entry.name)).catch(() => undefined);
        if (st) yield { name, size: st.size, modified: st.mtimeMs };
      }
    }
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    throwIfCanceled(options?.signal);
    try {
      await fsp.rm(this.pathOf(name), { force: true });
    } catch (err) {
      throw new StorageError(this.location, `delete ${name}`, { cause: err });
    }
  }

  private mapError(err: unknown, name: string, action: string): Error {
    if (isErrno(err, 'ENOENT')) return new ObjectNotFoundError(this.location, name);
    if (err instanceof ShortReadError) return err;
    return new StorageError(this.location, `${action} ${name}`, { cause: err });
  }
}

/** fsync of a file (opened r+) or a directory (opened r). */
async function syncPath(p: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await fsp.open(p, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
