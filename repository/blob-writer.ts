import type { BlobType, SealedBlob } from './blob/blob-codec.ts';
import { silentLogger, type Logger } from './logger.ts';
import type { IndexPack } from './index/index.ts';
import { packName } from './object-names.ts';
import { PackBuilder, type FinishedPack } from './pack/pack-builder.ts';
import type { PackBlob } from './pack/pack-header.ts';
import type { SpooledPack } from './pack/pack-spool.ts';
import { storeFile } from './storage/storage.ts';
import type { Repository } from './repository.ts';
import { releaseBuffer } from './util/release-buffer.ts';

export interface BlobWriterOptions {
  /** Pack uploads allowed in flight; `add` waits for a slot, which bounds memory. */
  readonly uploadConcurrency?: number;
  /** Write an index file after this many packs, so an interrupted backup's packs are reusable. */
  readonly packsPerIndex?: number;
  /** Each stored pack and index file is logged at debug level. */
  readonly logger?: Logger | undefined;
}

export interface BlobWriterStats {
  dataBlobs: number;
  treeBlobs: number;
  /** Bytes of packs written (blobs after compression and encryption, plus headers). */
  bytesAdded: number;
  packs: number;
}

/**
 * Deduplicates and packs blobs for one writer. A blob is first claimed by ID (so two files
 * sharing a chunk store it once), then added; packs are uploaded in the background, and only
 * after a pack is durable does it go into an index file: an index never points at a pack that
 * may not exist.
 */
export class BlobWriter {
  readonly stats: BlobWriterStats = { dataBlobs: 0, treeBlobs: 0, bytesAdded: 0, packs: 0 };
  private readonly repo: Repository;
  private readonly uploadConcurrency: number;
  private readonly packsPerIndex: number;
  private readonly logger: Logger;
  private readonly claimed = new Set<string>();
  private pack = new PackBuilder();
  private readonly uploads = new Set<Promise<void>>();
  private unindexed: IndexPack[] = [];
  private indexWrite: Promise<void> = Promise.resolve();
  private failure: Error | undefined = undefined;

  constructor(repo: Repository, options: BlobWriterOptions = {}) {
    this.repo = repo;
    this.uploadConcurrency = options.uploadConcurrency ?? 2;
    this.packsPerIndex = options.packsPerIndex ?? 8;
    this.logger = options.logger ?? silentLogger;
  }

  /** True when the caller should encode and `add` this blob; false when it is stored or claimed. */
  claim(id: Buffer): boolean {
    if (this.repo.index.has(id)) return false;
    const key = id.toString('hex');
    if (this.claimed.has(key)) return false;
    this.claimed.add(key);
    return true;
  }

  /** Gives up a claim whose blob will not be delivered (its file failed to read). */
  release(id: Buffer): void {
    this.claimed.delete(id.toString('hex'));
  }

  /**
   * Queues a sealed blob for the current pack. The writer owns `blob.sealed` from here on: once
   * its pack is stored the memory is freed (releaseBuffer), so the caller must not keep using it.
   */
  async add(type: BlobType, blob: SealedBlob): Promise<void> {
    this.throwIfFailed();
    this.pack.add(type, blob);
    if (type === 'data') this.stats.dataBlobs++;
    else this.stats.treeBlobs++;
    if (this.pack.size >= this.repo.config.packSize) await this.sealPack();
  }

  /** Claims, then adds, a blob encoded in this thread (trees). Returns whether it was new. */
  async addIfNew(type: BlobType, blob: SealedBlob): Promise<boolean> {
    if (!this.claim(blob.id)) return false;
    await this.add(type, blob);
    return true;
  }

  /** Uploads the last pack, waits for every upload, and writes the remaining index. */
  async flush(): Promise<void> {
    if (this.pack.count > 0) await this.sealPack();
    await Promise.all(this.uploads);
    this.throwIfFailed();
    this.queueIndexWrite();
    await this.indexWrite;
    this.throwIfFailed();
  }

  /**
   * Stores a pack of claimed data blobs that a worker wrote to a file (PackSpool), then indexes
   * it like the packs built here. Returns once the upload is under way (it waits for a slot).
   */
  async addSpooled(pack: SpooledPack): Promise<void> {
    this.throwIfFailed();
    for (const blob of pack.blobs) {
      if (blob.type === 'data') this.stats.dataBlobs++;
      else this.stats.treeBlobs++;
    }
    await this.startUpload(async () => {
      await storeFile(this.repo.storage, packName(pack.id.toString('hex')), pack.file);
      this.recordPack(pack.id, pack.blobs, pack.size);
    });
  }

  private async sealPack(): Promise<void> {
    const finished = this.pack.finish(this.repo.keys.encKey);
    this.pack = new PackBuilder();
    await this.startUpload(() => this.upload(finished));
  }

  /** Waits for an upload slot, then runs `upload` in the background; its failure fails the writer. */
  private async startUpload(upload: () => Promise<void>): Promise<void> {
    while (this.uploads.size >= this.uploadConcurrency) await Promise.race(this.uploads);
    this.throwIfFailed();
    const running = upload().catch((err: unknown) => {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
    });
    const tracked = running.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
  }

  private async upload(pack: FinishedPack): Promise<void> {
    await this.repo.storage.put(packName(pack.id.toString('hex')), pack.parts);
    await this.cacheTrees(pack);
    for (const part of pack.parts) releaseBuffer(part);
    this.recordPack(pack.id, pack.blobs, pack.size);
  }

  /** A stored pack's blobs go into the index (an index file every packsPerIndex packs). */
  private recordPack(packId: Buffer, blobs: readonly PackBlob[], size: number): void {
    for (const blob of blobs) {
      this.repo.index.add(blob.id, { packId, ...blob });
      this.claimed.delete(blob.id.toString('hex'));
    }
    this.stats.bytesAdded += size;
    this.stats.packs++;
    this.logger.debug({ pack: packId.toString('hex'), blobs: blobs.length, size }, 'stored pack');
    this.unindexed.push({ packId, blobs: [...blobs] });
    if (this.unindexed.length >= this.packsPerIndex) this.queueIndexWrite();
  }

  /** Trees go into the local cache as they are written, so the next backup need not fetch them. */
  private async cacheTrees(pack: FinishedPack): Promise<void> {
    const cache = this.repo.blobCache;
    if (!cache) return;
    const trees = pack.blobs.flatMap((blob, i) => {
      const sealed = pack.parts[i];
      return blob.type === 'tree' && sealed ? [{ id: blob.id, sealed }] : [];
    });
    // The cache is an optimisation: a failure to fill it must not fail the backup.
    if (trees.length > 0) await cache.putMany(trees).catch(() => undefined);
  }

  /**
   * After the writer stopped (a cancelled backup): waits for the uploads under way to settle,
   * then writes the index of every pack that was stored but is in no index file yet, through
   * `repo` (a view of the same repository that is not cancelled). Returns how many packs.
   */
  async indexStored(repo: Repository): Promise<number> {
    await Promise.allSettled(this.uploads);
    await this.indexWrite;
    const packs = this.unindexed;
    this.unindexed = [];
    if (packs.length > 0) this.logger.debug({ index: await repo.writeIndexFile(packs), packs: packs.length }, 'indexed the packs stored before the writer stopped');
    return packs.length;
  }

  private queueIndexWrite(): void {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    this.indexWrite = this.indexWrite
      .then(async () => {
        this.logger.debug({ index: await this.repo.writeIndexFile(packs), packs: packs.length }, 'wrote index file');
      })
      .catch((err: unknown) => {
        // Still unindexed: indexStored may write them yet.
        this.unindexed = [...packs, ...this.unindexed];
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      });
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
