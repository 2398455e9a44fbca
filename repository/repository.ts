import { setImmediate } from 'node:timers/promises';
import { blake3 } from '@napi-rs/blake-hash';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { BlobIndex, decodeIndexFile, encodeIndexFile, loadIndexFile, type BlobLocation, type IndexPack } from './index/index.ts';
import { listPlans } from './maintenance/prune-plan.ts';
import type { PausePoint } from './maintenance/coordination.ts';
import { decodeBlob } from './blob/blob-codec.ts';
import { newMasterKey, type MasterKey } from './crypto/master-key.ts';
import { open, seal, type SealPurpose } from './crypto/seal.ts';
import { newConfig, readConfig, writeConfig, type ConfigOverrides, type RepoConfig } from './config.ts';
import {
  BlobNotFoundError, CorruptObjectError, RepositoryExistsError, RepositoryNotFoundError, SnapshotNotFoundError,
} from './errors.ts';
import type { KdfSettings } from './crypto/kdf.ts';
import { unlockMasterKey, writeKeyFile } from './key-file.ts';
import {
  CONFIG_NAME, idOfName, INDEX_PREFIX, indexName, packName, SNAPSHOTS_PREFIX, snapshotName,
} from './object-names.ts';
import { decodeSnapshot, matchesFilter, newestFirst, type Snapshot, type SnapshotFilter, type StoredSnapshot } from './snapshot/snapshot.ts';
import { coalesceSpans, rangeOf, type RangeLimits } from './pack/read-ranges.ts';
import { CancelableStorage } from './storage/cancelable.ts';
import { ObjectNotFoundError, StorageError, type Storage } from './storage/storage.ts';
import { decodeTree, type Tree } from './tree/tree.ts';
import { releaseBuffer } from './util/release-buffer.ts';

export type InitOptions = ConfigOverrides;

/**
 * A store of sealed tree blobs by blob ID (repository/cache/). Whatever it returns is decoded and
 * ID-checked like bytes from storage; an entry that fails is deleted and the blob read again.
 */
export interface BlobCache {
  /** In the order of `ids`; many at once, where a lookup each cost ~20 µs of main thread each. */
  getMany(ids: readonly Buffer[]): Promise<Array<Buffer | undefined>>;
  /** Many at once (a pack's trees): one write, where a put each took a round trip each. */
  putMany(blobs: ReadonlyArray<{ readonly id: Buffer; readonly sealed: Buffer }>): Promise<void>;
  delete(id: Buffer): Promise<void>;
  /** Drops the entries `keep` rejects (no longer indexed, after a prune); returns how many. */
  retain(keep: (id: Buffer) => boolean): Promise<number>;
}

/** What a repository needs of the lease its writer holds (maintenance/leases.ts). */
export interface WriterLease {
  pause(point: PausePoint): Promise<void>;
  /** Runs `write` only while the lease stands, and takes the object back (`undo`) if it fell meanwhile. */
  guard<T>(write: () => Promise<T>, undo: (written: T) => Promise<void>): Promise<T>;
}

export interface RepositoryHooks {
  readonly blobCache?: BlobCache | undefined;
  /** What close() releases (the local cache); views made with withStorage or withSignal own nothing. */
  readonly close?: (() => Promise<void>) | undefined;
}

/** How many objects of one kind are fetched at once when loading indexes or snapshots. */
const LOAD_CONCURRENCY = 8;
/**
 * Blobs read together (readBlobs): neighbours up to 256 KiB apart in one read of at most 4 MiB.
 * Trees of one snapshot sit close together in a few packs, so a level of a tree is a few reads.
 */
const BLOB_READ_LIMITS: RangeLimits = { maxGap: 256 << 10, maxRange: 4 << 20 };
/**
 * Decoding lets the event loop turn after this many blobs: the native memory behind each blob's
 * cipher and hasher handles is freed by finalizers that run between turns, and a copy's ranges
 * of thousands of small blobs piled up ~150 MiB of it without.
 */
const YIELD_EVERY_BLOBS = 256;
/** Listings of index/ tried while concurrent compactions keep replacing the files. */
const MAX_INDEX_LISTINGS = 5;

/**
 * An open repository: its keys, config and in-memory index, and the reads and writes of
 * small objects (indexes, snapshots, trees). Writing blobs into packs is BlobWriter's job.
 */
export class Repository {
  readonly storage: Storage;
  readonly keys: MasterKey;
  readonly config: RepoConfig;
  readonly keyId: string;
  /** Where each blob is, as the index files say. Writers deduplicate against this only. */
  readonly index = new BlobIndex();
  /**
   * Blobs of packs that a prune has marked for deletion but not yet swept (from prune plans).
   * Readers may still fetch them; writers must not reuse them, or the sweep could delete what a
   * new snapshot needs.
   */
  readonly retired = new BlobIndex();
  /** Where tree blobs are cached between runs, if anywhere. */
  readonly blobCache: BlobCache | undefined;
  private readonly onClose: (() => Promise<void>) | undefined;
  /** The lease of the writer using this repository, once it holds one. */
  private lease: WriterLease | undefined;

  private constructor(storage: Storage, keys: MasterKey, config: RepoConfig, keyId: string, hooks: RepositoryHooks = {}) {
    this.storage = storage;
    this.keys = keys;
    this.config = config;
    this.keyId = keyId;
    this.blobCache = hooks.blobCache;
    this.onClose = hooks.close;
  }

  static async init(storage: Storage, password: Buffer, options: InitOptions = {}, kdf: KdfSettings = {}): Promise<Repository> {
    if (await exists(storage, CONFIG_NAME)) throw new RepositoryExistsError(storage.location);
    const keys = newMasterKey();
    const config = newConfig(options);
    const key = await writeKeyFile(storage, keys, password, kdf);
    await writeConfig(storage, keys, config);
    return new Repository(storage, keys, config, key.id);
  }

  static async open(storage: Storage, password: Buffer): Promise<Repository> {
    if (!(await exists(storage, CONFIG_NAME))) throw new RepositoryNotFoundError(storage.location);
    const { master, keyId } = await unlockMasterKey(storage, password);
    return new Repository(storage, master, await readConfig(storage, master), keyId);
  }

  /**
   * The same repository (keys, config) through another storage stack and hooks, e.g. with a
   * cache once the repository ID is known. The in-memory index starts empty.
   */
  withStorage(storage: Storage, hooks: RepositoryHooks = {}): Repository {
    return new Repository(storage, this.keys, this.config, this.keyId, hooks);
  }

  /**
   * One job's view of this repository: every storage call is cancelled by `signal`; the tree
   * cache is shared; the in-memory index starts empty (the job loads its own).
   */
  withSignal(signal: AbortSignal): Repository {
    return this.withStorage(new CancelableStorage(this.storage, signal), { blobCache: this.blobCache });
  }

  /** Releases what the repository holds open (its local cache). */
  async close(): Promise<void> {
    await this.onClose?.();
  }

  /** Reads a sealed small object (index, snapshot) after checking that its name is its hash. */
  async readSealedObject(name: string, purpose: SealPurpose): Promise<Buffer> {
    const stored = await this.storage.get(name);
    const id = idOfName(name);
    if (id !== undefined && blake3(stored).toString('hex') !== id) throw new CorruptObjectError(name, 'content does not match its name');
    try {
      return open(this.keys.encKey, purpose, stored);
    } catch (err) {
      throw new CorruptObjectError(name, 'does not authenticate', { cause: err });
    }
  }

  /** Seals and stores a small object under a name of the caller's (leases, which their holder rewrites). */
  async writeSealedObjectAs(name: string, purpose: SealPurpose, plaintext: Buffer): Promise<void> {
    await this.storage.put(name, seal(this.keys.encKey, purpose, plaintext));
  }

  /**
   * Seals and stores a small object under the hash of its stored bytes; returns that ID. Index
   * files, snapshots and plans are what others rely on: under a lease they are written only
   * while it stands (Lease.guard).
   */
  async writeSealedObject(nameOf: (id: string) => string, purpose: SealPurpose, plaintext: Uint8Array | readonly Uint8Array[]): Promise<string> {
    const stored = seal(this.keys.encKey, purpose, plaintext);
    const id = blake3(stored).toString('hex');
    const snapshot = purpose === 'snapshot';
    const write = async (): Promise<string> => {
      if (snapshot) await this.lease?.pause('snapshot-confirmed');
      await this.storage.put(nameOf(id), stored);
      if (snapshot) await this.lease?.pause('snapshot-landed');
      return id;
    };
    return this.lease ? this.lease.guard(write, () => this.storage.delete(nameOf(id))) : write();
  }

  /** Called by Lease.acquire: from now on this repository writes under the lease. */
  attachLease(lease: WriterLease): void {
    this.lease = lease;
  }

  detachLease(lease: WriterLease): void {
    if (this.lease === lease) this.lease = undefined;
  }

  // ---- index

  /** Loads every index file, and the entries of pending prune plans, into memory. Returns the number of index files read. */
  async loadIndex(): Promise<number> {
    const names = await this.loadIndexFiles(this.index);
    for (const { plan } of await listPlans(this)) loadIndexFile(plan.index, this.retired);
    await this.blobCache?.retain((id) => this.locate(id) !== undefined);
    await this.lease?.pause('index-loaded');
    return names.length;
  }

  /**
   * Reads every index file once (but those in `skip`), passing each one's packs to `use`, and
   * returns the names read. Prune deletes index files after merging them into new ones, so a file
   * that vanishes between the listing and the read is no error: the storage is listed again, and
   * the merged file that replaced it is read instead. Files that exist but cannot be read go to
   * `onError`, or throw without it.
   */
  async forEachIndexFile(
    use: (name: string, packs: IndexPack[]) => void,
    options: { skip?: ReadonlySet<string>; onError?: (name: string, err: unknown) => void } = {},
  ): Promise<string[]> {
    return this.readEachIndexFile(async (name) => { use(name, await this.readIndexFile(name)); }, options);
  }

  /**
   * Like forEachIndexFile, but adds the entries straight into `into`, without an object per blob
   * (decoding a million entries into objects took ~400 MiB).
   */
  async loadIndexFiles(into: BlobIndex, options: { skip?: ReadonlySet<string> } = {}): Promise<string[]> {
    return this.readEachIndexFile((name) => this.readIndexObject(name, (plain) => { loadIndexFile(plain, into, { source: name }); }), options);
  }

  private async readEachIndexFile(
    readOne: (name: string) => Promise<void>,
    options: { skip?: ReadonlySet<string>; onError?: (name: string, err: unknown) => void },
  ): Promise<string[]> {
    const done = new Set<string>(options.skip);
    const read: string[] = [];
    for (let round = 0; round < MAX_INDEX_LISTINGS; round++) {
      const names: string[] = [];
      for await (const obj of this.storage.list(INDEX_PREFIX)) if (idOfName(obj.name) !== undefined && !done.has(obj.name)) names.push(obj.name);
      let vanished = 0;
      await mapLimit(names, LOAD_CONCURRENCY, async (name) => {
        done.add(name);
        try {
          await readOne(name);
          read.push(name);
        } catch (err) {
          if (err instanceof ObjectNotFoundError) vanished++;
          else if (options.onError) options.onError(name, err);
          else throw err;
        }
      });
      if (vanished === 0) return read;
    }
    throw new StorageError(this.storage.location, `list a stable set of index files after ${MAX_INDEX_LISTINGS} tries (index files keep disappearing)`);
  }

  /** Where to read a blob from: the index, or a pending prune plan. */
  locate(id: Buffer): BlobLocation | undefined {
    return this.index.get(id) ?? this.retired.get(id);
  }

  async readIndexFile(name: string): Promise<IndexPack[]> {
    return this.readIndexObject(name, (plain) => decodeIndexFile(plain).packs);
  }

  /** Reads index file `name` and decodes it with `decode`; a file that does not decode is corrupt. */
  private async readIndexObject<T>(name: string, decode: (plain: Buffer) => T): Promise<T> {
    const plain = await this.readSealedObject(name, 'index');
    try {
      return decode(zstdDecompressSync(plain));
    } catch (err) {
      throw new CorruptObjectError(name, err instanceof Error ? err.message : 'undecodable', { cause: err });
    }
  }

  /** Writes an index file; `supersedes` names index files (by ID) whose entries it includes. */
  async writeIndexFile(packs: IndexPack[], options: { supersedes?: readonly Buffer[] } = {}): Promise<string> {
    await this.lease?.pause('index-write');
    return this.writeSealedObject(indexName, 'index', zstdCompressSync(encodeIndexFile(packs, { supersedes: [...(options.supersedes ?? [])] })));
  }

  // ---- blobs and trees

  /** Reads, decrypts and verifies one blob through the index (and the tree cache, for trees). */
  async readBlob(id: Buffer): Promise<Buffer> {
    const [plain] = await this.readBlobs([id]);
    if (!plain) throw new BlobNotFoundError(id.toString('hex'));
    return plain;
  }

  /**
   * readBlob for many blobs, with few reads: the tree cache is asked for all of them at once,
   * and the rest are fetched a range of a pack at a time (coalesceSpans, within `limits`). Results
   * come in the order of `ids`.
   */
  async readBlobs(ids: readonly Buffer[], limits: RangeLimits = BLOB_READ_LIMITS): Promise<Buffer[]> {
    return this.readBlobsAs(ids, (sealed, id, loc) => decodeBlob(this.keys, sealed, id, loc.rawLength), limits);
  }

  /**
   * readBlobs with the caller's `decode` of each stored blob (a copy recodes them for another
   * repository); it must check the blob as decodeBlob does, throw when it is bad, and keep
   * nothing of `sealed` (its memory is freed once its range is decoded).
   */
  async readBlobsAs<T>(ids: readonly Buffer[], decode: (sealed: Buffer, id: Buffer, loc: BlobLocation) => T, limits: RangeLimits = BLOB_READ_LIMITS): Promise<T[]> {
    const wanted = ids.map((id, at) => {
      const loc = this.locate(id);
      if (!loc) throw new BlobNotFoundError(id.toString('hex'));
      return { at, id, loc, offset: loc.offset, length: loc.length };
    });
    const out = new Array<T | undefined>(ids.length);
    const cache = this.blobCache;
    const cacheable = cache ? wanted.filter(({ loc }) => loc.type === 'tree') : [];
    if (cache && cacheable.length > 0) {
      const cached = await cache.getMany(cacheable.map(({ id }) => id));
      for (const [i, { at, id, loc }] of cacheable.entries()) {
        const sealed = cached[i];
        if (!sealed) continue;
        try {
          out[at] = decode(sealed, id, loc);
        } catch {
          await cache.delete(id); // A bad entry is never trusted: read the blob from storage.
        }
      }
    }
    const byPack = new Map<string, typeof wanted>();
    for (const blob of wanted) {
      if (out[blob.at] !== undefined) continue;
      const packHex = blob.loc.packId.toString('hex');
      const inPack = byPack.get(packHex);
      if (inPack) inPack.push(blob);
      else byPack.set(packHex, [blob]);
    }
    const toCache: Array<{ id: Buffer; sealed: Buffer }> = [];
    let decoded = 0;
    await mapLimit([...byPack], LOAD_CONCURRENCY, async ([packHex, blobs]) => {
      const name = packName(packHex);
      for (const group of coalesceSpans(blobs, limits)) {
        const range = rangeOf(group);
        let bytes: Buffer;
        try {
          bytes = await this.storage.get(name, range);
        } catch (err) {
          // A cut pack fails a range as a whole: read its blobs one by one, to name the bad one.
          if (group.length === 1 || err instanceof ObjectNotFoundError) throw err;
          for (const blob of group) out[blob.at] = (await this.readBlobsAs([blob.id], decode))[0];
          continue;
        }
        let cached = false;
        for (const { at, id, loc } of group) {
          if (++decoded % YIELD_EVERY_BLOBS === 0) await setImmediate();
          const sealed = bytes.subarray(loc.offset - range.offset, loc.offset - range.offset + loc.length);
          try {
            out[at] = decode(sealed, id, loc);
          } catch (err) {
            throw new CorruptObjectError(name, `blob ${id.toString('hex')} at offset ${loc.offset}: ${err instanceof Error ? err.message : 'unreadable'}`, { cause: err });
          }
          if (cache && loc.type === 'tree') {
            toCache.push({ id, sealed });
            cached = true;
          }
        }
        // Ranges of up to a pack, read a batch at a time, outlive a few young collections and
        // would wait for a full one: freed now unless the cache still needs them.
        if (!cached) releaseBuffer(bytes);
      }
    });
    if (cache && toCache.length > 0) await cache.putMany(toCache);
    return out.map((plain, at) => {
      if (plain === undefined) throw new BlobNotFoundError((ids[at] ?? Buffer.alloc(0)).toString('hex'));
      return plain;
    });
  }

  async loadTree(id: Buffer): Promise<Tree> {
    const [tree] = await this.loadTrees([id]);
    if (!tree) throw new BlobNotFoundError(id.toString('hex'));
    return tree;
  }

  /** Many trees, in the order of `ids`, read with few reads (readBlobs). */
  async loadTrees(ids: readonly Buffer[]): Promise<Tree[]> {
    const blobs = await this.readBlobs(ids);
    return blobs.map((bytes, i) => {
      try {
        return decodeTree(bytes);
      } catch (err) {
        throw new CorruptObjectError(`tree ${(ids[i] ?? Buffer.alloc(0)).toString('hex')}`, err instanceof Error ? err.message : 'undecodable', { cause: err });
      }
    });
  }

  // ---- snapshots

  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    await this.lease?.pause('snapshot-write');
    return this.writeSealedObject(snapshotName, 'snapshot', Buffer.from(JSON.stringify(snapshot)));
  }

  async loadSnapshot(id: string): Promise<Snapshot> {
    const name = snapshotName(id);
    const plain = await this.readSealedObject(name, 'snapshot');
    try {
      return decodeSnapshot(plain);
    } catch (err) {
      throw new CorruptObjectError(name, err instanceof Error ? err.message : 'undecodable', { cause: err });
    }
  }

  async listSnapshotIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const obj of this.storage.list(SNAPSHOTS_PREFIX)) {
      const id = idOfName(obj.name);
      if (id !== undefined) ids.push(id);
    }
    return ids;
  }

  /** All snapshots matching `filter`, newest first. */
  async listSnapshots(filter: SnapshotFilter = {}): Promise<StoredSnapshot[]> {
    const ids = await this.listSnapshotIds();
    const all = await mapLimit(ids, LOAD_CONCURRENCY, async (id) => {
      try {
        return { id, snapshot: await this.loadSnapshot(id) };
      } catch (err) {
        if (err instanceof ObjectNotFoundError) return undefined; // Forgotten since the listing.
        throw err;
      }
    });
    return all.filter((s): s is StoredSnapshot => s !== undefined && matchesFilter(s.snapshot, filter)).sort(newestFirst);
  }

  /** Resolves "latest", a full ID or a unique prefix of at least 8 hex digits. */
  async resolveSnapshot(ref: string, filter: SnapshotFilter = {}): Promise<StoredSnapshot> {
    if (ref === 'latest') {
      const newest = (await this.listSnapshots(filter))[0];
      if (!newest) throw new SnapshotNotFoundError(ref, 'the repository has no snapshot matching the filters');
      return newest;
    }
    if (!/^[0-9a-f]{8,64}$/.test(ref)) throw new SnapshotNotFoundError(ref, 'give "latest", a full ID, or a prefix of at least 8 hex digits');
    const matches = (await this.listSnapshotIds()).filter((id) => id.startsWith(ref));
    if (matches.length > 1) throw new SnapshotNotFoundError(ref, `the prefix is ambiguous (${matches.length} snapshots match)`);
    const id = matches[0];
    if (id === undefined) throw new SnapshotNotFoundError(ref);
    return { id, snapshot: await this.loadSnapshot(id) };
  }
}

async function exists(storage: Storage, name: string): Promise<boolean> {
  try {
    await storage.stat(name);
    return true;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return false;
    throw err;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(runners);
  return results;
}

