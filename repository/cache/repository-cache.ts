import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { silentLogger, type Logger } from '../logger.ts';
import { makeDirs } from '../util/make-dirs.ts';
import type { BlobCache } from '../repository.ts';

/**
 * The local cache of one repository: a LevelDB database in `<root>/<repository id>` holding
 * immutable objects only, so an entry never goes stale, it can only become unneeded:
 *
 * - `objects`: index files and snapshots, by object name, as stored (sealed) bytes;
 * - `trees`: tree blobs, by blob ID, as sealed bytes.
 *
 * Nothing here is trusted: readers verify every entry as if it came from storage and drop the
 * entries that fail. The cache is an optimisation only, so its own failures never fail a
 * command: the first one is logged as a warning and the cache is switched off.
 */
export interface RepositoryCacheOptions {
  /** The directory holding one cache per repository, e.g. ~/.cache/arca. */
  readonly root: string;
  /** The repository ID from its config (64 hex digits). */
  readonly repoId: string;
  readonly logger?: Logger | undefined;
}

/** What the caching storage wrapper needs: sealed objects by name. */
export interface ObjectCache {
  get(name: string): Promise<Buffer | undefined>;
  put(name: string, bytes: Buffer): Promise<void>;
  delete(name: string): Promise<void>;
  /** Names of the cached objects that start with `prefix`. */
  names(prefix: string): Promise<string[]>;
}

/** Bump when the layout changes; a cache of another version is emptied on open. */
const CACHE_VERSION = '1';
const REPO_ID = /^[0-9a-f]{64}$/;
const CACHEDIR_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache made by arca (https://bford.info/cachedir/).\n';

type Db = ClassicLevel<string, Buffer>;

/** `$XDG_CACHE_HOME/arca`, or `~/.cache/arca` when XDG_CACHE_HOME is unset or not absolute. */
export function defaultCacheRoot(env: NodeJS.ProcessEnv, homeDir: string): string {
  const xdg = env.XDG_CACHE_HOME;
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homeDir, '.cache'), 'arca');
}

function levelCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'LEVEL_DATABASE_NOT_OPEN') return code;
  }
  return undefined;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)).replace(/\.$/, '');

export class RepositoryCache {
  readonly dir: string;
  readonly objects: ObjectCache;
  readonly trees: BlobCache;
  private readonly db: Db;
  private readonly logger: Logger;
  private broken = false;

  private constructor(dir: string, db: Db, logger: Logger) {
    this.dir = dir;
    this.db = db;
    this.logger = logger;
    const objects = db.sublevel<string, Buffer>('o', { valueEncoding: 'buffer' });
    const trees = db.sublevel<string, Buffer>('t', { valueEncoding: 'buffer' });
    this.objects = {
      get: (name) => this.guard(undefined, () => objects.get(name)),
      put: (name, bytes) => this.guard(undefined, () => objects.put(name, bytes)),
      delete: (name) => this.guard(undefined, () => objects.del(name)),
      names: (prefix) => this.guard([], () => objects.keys({ gte: prefix, lt: `${prefix}\uffff` }).all()),
    };
    this.trees = {
      getMany: (ids) => this.guard(ids.map(() => undefined), () => trees.getMany(ids.map((id) => id.toString('hex')))),
      putMany: (blobs) => this.guard(undefined, () => trees.batch(blobs.map(({ id, sealed }) => ({ type: 'put' as const, key: id.toString('hex'), value: sealed })))),
      delete: (id) => this.guard(undefined, () => trees.del(id.toString('hex'))),
      retain: (keep) => this.dropTreesNotIn(keep),
    };
  }

  /**
   * Opens (creating it if needed) the cache of a repository. Returns undefined, after a warning,
   * when it cannot be used: another arca process has it open, or the directory is not writable.
   * A database that does not open because it is damaged is deleted and made anew.
   */
  static async open(options: RepositoryCacheOptions): Promise<RepositoryCache | undefined> {
    const logger = (options.logger ?? silentLogger).child({ cache: options.root });
    const warn = (text: string): void => { logger.warn({}, text); };
    if (!REPO_ID.test(options.repoId)) {
      warn(`the repository ID "${options.repoId}" is not 64 hex digits, so no cache is used`);
      return undefined;
    }
    const dir = path.join(options.root, options.repoId);
    try {
      await makeDirs(options.root, 0o700);
      await fsp.writeFile(path.join(options.root, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
      const db = await openDb(dir).catch(async (err: unknown) => {
        if (levelCode(err) !== 'LEVEL_CORRUPTION') throw err;
        await fsp.rm(dir, { recursive: true, force: true });
        return openDb(dir);
      });
      try {
        const meta = db.sublevel('m', { valueEncoding: 'utf8' });
        if (await meta.get('version') !== CACHE_VERSION) {
          await db.clear();
          await meta.put('version', CACHE_VERSION);
        }
      } catch (err) {
        await db.close().catch(() => undefined);
        throw err;
      }
      return new RepositoryCache(dir, db, logger);
    } catch (err) {
      if (levelCode(err) === 'LEVEL_LOCKED') warn(`the cache ${dir} is in use by another arca process; going on without it`);
      else warn(`cannot use the cache ${dir} (${message(err)}); going on without it`);
      return undefined;
    }
  }

  /** Drops the tree blobs that `keep` rejects (e.g. no longer indexed after a prune). Returns how many. */
  async dropTreesNotIn(keep: (id: Buffer) => boolean): Promise<number> {
    const trees = this.db.sublevel<string, Buffer>('t', { valueEncoding: 'buffer' });
    return this.guard(0, async () => {
      const drop: string[] = [];
      for await (const key of trees.keys()) if (!keep(Buffer.from(key, 'hex'))) drop.push(key);
      if (drop.length > 0) await trees.batch(drop.map((key) => ({ type: 'del' as const, key })));
      return drop.length;
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** Runs a cache operation; on failure warns once, switches the cache off and returns `fallback`. */
  private async guard<T>(fallback: T, op: () => Promise<T>): Promise<T> {
    if (this.broken) return fallback;
    try {
      return await op();
    } catch (err) {
      this.switchOff(err);
      return fallback;
    }
  }

  /** Concurrent operations may fail together: warns about the first failure only. */
  private switchOff(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.logger.warn({}, `the cache ${this.dir} failed (${message(err)}); going on without it`);
  }
}

async function openDb(dir: string): Promise<Db> {
  const db: Db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  return db;
}
