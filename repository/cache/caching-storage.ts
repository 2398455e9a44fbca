import { blake3 } from '@napi-rs/blake-hash';
import { idOfName, INDEX_PREFIX, SNAPSHOTS_PREFIX } from '../object-names.ts';
import { throwIfCanceled } from '../errors.ts';
import { contentParts, type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage } from '../storage/storage.ts';
import type { ObjectCache } from './repository-cache.ts';

/** Prefixes whose objects are cached: small, immutable, and read by almost every command. */
const CACHED_PREFIXES = [INDEX_PREFIX, SNAPSHOTS_PREFIX] as const;

function isCached(name: string): boolean {
  return CACHED_PREFIXES.some((prefix) => name.startsWith(prefix)) && idOfName(name) !== undefined;
}

function hashMatches(name: string, bytes: Uint8Array): boolean {
  return blake3(bytes).toString('hex') === idOfName(name);
}

/**
 * A Storage wrapper that keeps index files and snapshots in a local cache. Whole-object gets of
 * those are answered from the cache when the cached bytes still hash to the object's name; an
 * entry that does not is dropped and the object fetched again. Only bytes that hash to their
 * name are cached, on the way in (puts) and on the way out (gets).
 *
 * Objects are immutable, so an entry can only become unneeded, when prune or forget deletes the
 * object: every complete listing of `index/` or `snapshots/` drops the entries it did not list.
 * Everything else (packs, keys, config, ranges, stats) passes straight through.
 */
export class CachingStorage implements Storage {
  readonly location: string;
  /** Whole-object gets answered from the cache, and those that went to storage. */
  readonly stats = { hits: 0, misses: 0, dropped: 0 };
  private readonly inner: Storage;
  private readonly cache: ObjectCache;

  /** Packs pass straight through: their spooling is the inner storage's. */
  readonly spoolDir: string | undefined;
  readonly putFile: Storage['putFile'];

  constructor(inner: Storage, cache: ObjectCache) {
    this.inner = inner;
    this.location = inner.location;
    this.cache = cache;
    this.spoolDir = inner.spoolDir;
    this.putFile = inner.putFile;
  }

  async put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    await this.inner.put(name, data, options);
    if (!isCached(name)) return;
    const parts = contentParts(data);
    const bytes = parts.length === 1 && parts[0] !== undefined ? Buffer.from(parts[0]) : Buffer.concat(parts);
    if (hashMatches(name, bytes)) await this.cache.put(name, bytes);
  }

  async get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    if (range !== undefined || !isCached(name)) return this.inner.get(name, range, options);
    throwIfCanceled(options?.signal);
    const cached = await this.cache.get(name);
    if (cached !== undefined) {
      if (hashMatches(name, cached)) {
        this.stats.hits++;
        return cached;
      }
      this.stats.dropped++;
      await this.cache.delete(name);
    }
    this.stats.misses++;
    const bytes = await this.inner.get(name, undefined, options);
    if (hashMatches(name, bytes)) await this.cache.put(name, bytes);
    return bytes;
  }

  stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    return this.inner.stat(name, options);
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    await this.inner.delete(name, options);
    if (isCached(name)) await this.cache.delete(name);
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    // The cached kinds this listing covers completely, e.g. "index/" for "index/" or "".
    const covered = CACHED_PREFIXES.filter((p) => p.startsWith(prefix));
    const listed = new Set<string>();
    for await (const info of this.inner.list(prefix, options)) {
      if (covered.length > 0) listed.add(info.name);
      yield info;
    }
    // Only a listing that ran to its end says what is gone.
    for (const kind of covered) {
      for (const name of await this.cache.names(kind)) if (!listed.has(name)) await this.cache.delete(name);
    }
  }
}
