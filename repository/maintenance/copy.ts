import { blobId } from '../crypto/master-key.ts';
import { recodeBlob, sealBlob, type BlobType, type RecodedBlob } from '../blob/blob-codec.ts';
import type { BlobWriter } from '../blob-writer.ts';
import { BlobNotFoundError } from '../errors.ts';
import type { BlobLocation } from '../index/index.ts';
import type { RangeLimits } from '../pack/read-ranges.ts';
import type { Repository } from '../repository.ts';
import type { StoredSnapshot } from '../snapshot/snapshot.ts';
import { encodeTree, type Tree, type TreeNode } from '../tree/tree.ts';

export interface CopyStats {
  snapshotsCopied: number;
  snapshotsSkipped: number;
  blobsRead: number;
  blobsStored: number;
}

export interface CopySettings {
  /**
   * Stored bytes of data read from the source in one batch (default 16 MiB). Blobs are recoded
   * as they arrive (a blob's plaintext lives only while it is checked and hashed), and one batch
   * is read while the one before is stored, so this and the writer's packs bound what a copy
   * holds, whatever the number of blobs.
   */
  readonly batchBytes?: number | undefined;
}

const DEFAULT_BATCH_BYTES = 16 << 20;
/** Trees read at once (each level of a snapshot's tree is read in batches of this many). */
const TREE_BATCH = 256;
/**
 * How a batch's blobs are read: neighbours in a source pack up to 1 MiB apart in one request of up
 * to a pack's worth, so a copy asks for whole runs of a pack rather than a blob at a time.
 */
function readLimits(packSize: number): RangeLimits {
  return { maxGap: 1 << 20, maxRange: Math.max(packSize, 4 << 20) };
}

/**
 * Copies snapshots between repositories with different keys (and chunker parameters, possibly).
 * Blob IDs are keyed per repository, so every tree is rewritten with the destination's IDs; data is
 * decrypted from the source and re-sealed for the destination, and stored there only if the
 * destination does not have it. An interrupted copy leaves indexed packs that the next run reuses;
 * a snapshot already copied (its `original` is the source ID) is skipped, so copying twice adds
 * nothing.
 *
 * A snapshot is copied in two passes over its trees, each a level at a time in batches: the first
 * collects the data blobs and copies them in the source's order, in batches read a pack range at a
 * time (DataBatches); the second rewrites the trees from the deepest level up, when
 * every blob a tree names has its destination ID. Reading each blob and tree alone, with the
 * directories' entries in flight at every depth, cost a request per blob and held thousands of reads.
 */
export class SnapshotCopier {
  readonly stats: CopyStats = { snapshotsCopied: 0, snapshotsSkipped: 0, blobsRead: 0, blobsStored: 0 };
  private readonly source: Repository;
  private readonly dest: Repository;
  private readonly writer: BlobWriter;
  private readonly batchBytes: number;
  /** Source blob ID → destination blob ID, for blobs met earlier in this run. */
  private readonly translated = new Map<string, Buffer>();

  constructor(source: Repository, dest: Repository, writer: BlobWriter, settings: CopySettings = {}) {
    this.source = source;
    this.dest = dest;
    this.writer = writer;
    this.batchBytes = Math.max(1, settings.batchBytes ?? DEFAULT_BATCH_BYTES);
  }

  /** Source snapshots that have no copy in the destination yet. */
  async pending(snapshots: readonly StoredSnapshot[]): Promise<StoredSnapshot[]> {
    const present = new Set((await this.dest.listSnapshots()).flatMap(({ id, snapshot }) => [id, snapshot.original ?? id]));
    const todo = snapshots.filter((s) => !present.has(s.id) && !present.has(s.snapshot.original ?? s.id));
    this.stats.snapshotsSkipped += snapshots.length - todo.length;
    return todo;
  }

  /** Copies the blobs and trees of one snapshot; returns the snapshot to save in the destination. */
  async copyTrees(stored: StoredSnapshot): Promise<StoredSnapshot['snapshot']> {
    const root = Buffer.from(stored.snapshot.tree, 'hex');
    const levels = await this.copyData(root);
    for (const level of levels.reverse()) await this.copyLevel(level);
    const tree = this.translated.get(root.toString('hex'));
    if (!tree) throw new BlobNotFoundError(stored.snapshot.tree);
    this.stats.snapshotsCopied++;
    return { ...stored.snapshot, tree: tree.toString('hex'), parent: undefined, original: stored.snapshot.original ?? stored.id };
  }

  /**
   * First pass: walks the trees not copied yet a level at a time and copies the data blobs they
   * name. Returns the tree IDs of each level, root first, for the second pass.
   */
  private async copyData(root: Buffer): Promise<Buffer[][]> {
    const levels: Buffer[][] = [];
    const data = new DataBatches(this.source, this.batchBytes, readLimits(this.source.config.packSize), {
      recode: (sealed, id, loc) => recodeBlob(this.source.keys, this.dest.keys, sealed, id, loc.rawLength, this.dest.config.compression.level, (destId) => this.writer.claim(destId)),
      store: (sourceId, blob) => this.storeData(sourceId, blob),
    });
    let level = this.translated.has(root.toString('hex')) ? [] : [root];
    while (level.length > 0) {
      levels.push(level);
      const next: Buffer[] = [];
      const seen = new Set<string>();
      for await (const tree of this.loadInBatches(level)) {
        for (const node of tree.nodes) {
          if (node.type === 'dir') {
            const key = node.subtree.toString('hex');
            if (!this.translated.has(key) && !seen.has(key)) {
              seen.add(key);
              next.push(node.subtree);
            }
          } else if (node.type === 'file') {
            for (const id of node.content) if (!this.translated.has(id.toString('hex'))) await data.add(id);
          }
        }
      }
      level = next;
    }
    await data.finish();
    return levels;
  }

  /** Second pass, for one level: its trees, whose subtrees and data are all copied, rewritten and stored. */
  private async copyLevel(ids: readonly Buffer[]): Promise<void> {
    const todo = ids.filter((id) => !this.translated.has(id.toString('hex')));
    for (let from = 0; from < todo.length; from += TREE_BATCH) {
      const batch = todo.slice(from, from + TREE_BATCH);
      const trees = await this.source.loadTrees(batch);
      this.stats.blobsRead += batch.length;
      for (const [i, tree] of trees.entries()) {
        const nodes = tree.nodes.map((node): TreeNode => {
          if (node.type === 'dir') return { ...node, subtree: this.translation(node.subtree) };
          if (node.type === 'file') return { ...node, content: node.content.map((id) => this.translation(id)) };
          return node;
        });
        this.translated.set((batch[i] as Buffer).toString('hex'), await this.store(encodeTree({ nodes }), 'tree'));
      }
    }
  }

  /** The trees of `ids`, read a batch at a time. */
  private async* loadInBatches(ids: readonly Buffer[]): AsyncGenerator<Tree> {
    for (let from = 0; from < ids.length; from += TREE_BATCH) yield* await this.source.loadTrees(ids.slice(from, from + TREE_BATCH));
  }

  private translation(sourceId: Buffer): Buffer {
    const id = this.translated.get(sourceId.toString('hex'));
    if (!id) throw new BlobNotFoundError(sourceId.toString('hex'));
    return id;
  }

  /** A data blob recoded for the destination: stored if it was claimed (RecodedBlob.sealed). */
  private async storeData(sourceId: Buffer, blob: RecodedBlob): Promise<void> {
    this.stats.blobsRead++;
    if (blob.sealed !== undefined) {
      await this.writer.add('data', { id: blob.id, sealed: blob.sealed, rawLength: blob.rawLength });
      this.stats.blobsStored++;
    }
    this.translated.set(sourceId.toString('hex'), blob.id);
  }

  private async store(plaintext: Buffer, type: BlobType): Promise<Buffer> {
    const id = blobId(this.dest.keys.idKey, plaintext);
    if (this.writer.claim(id)) {
      await this.writer.add(type, sealBlob(this.dest.keys, id, plaintext, this.dest.config.compression.level));
      this.stats.blobsStored++;
    }
    return id;
  }
}

/** What DataBatches does with each blob: recode it as it is read (see Repository.readBlobsAs), then store it. */
interface BatchSteps {
  readonly recode: (sealed: Buffer, id: Buffer, loc: BlobLocation) => RecodedBlob;
  readonly store: (sourceId: Buffer, blob: RecodedBlob) => Promise<void>;
}

/**
 * Source data blobs to copy, gathered (up to GATHERED at a time) and sorted by where they are in
 * the source, then read in batches of about `batchBytes` with few requests (Repository.readBlobsAs
 * with `limits`), recoded for the destination as they arrive, and stored blob by blob; the next batch is read while the last one is
 * stored, never more than one ahead. In the source's order, the copy's packs keep its layout:
 * a file's blobs stay together, and a restore of the copy reads as few ranges as one of the source.
 */
class DataBatches {
  private readonly source: Repository;
  private readonly batchBytes: number;
  private readonly limits: RangeLimits;
  private readonly steps: BatchSteps;
  private gathered: Array<{ readonly id: Buffer; readonly loc: BlobLocation }> = [];
  /** IDs gathered or being copied, so a blob two files share is read once. */
  private readonly queued = new Set<string>();
  private storing: Promise<void> = Promise.resolve();

  constructor(source: Repository, batchBytes: number, limits: RangeLimits, steps: BatchSteps) {
    this.source = source;
    this.batchBytes = batchBytes;
    this.limits = limits;
    this.steps = steps;
  }

  async add(id: Buffer): Promise<void> {
    const key = id.toString('hex');
    if (this.queued.has(key)) return;
    const loc = this.source.locate(id);
    if (!loc) throw new BlobNotFoundError(key);
    this.queued.add(key);
    this.gathered.push({ id, loc });
    if (this.gathered.length >= GATHERED) await this.drain();
  }

  /** Copies what is left, and waits for every batch to be stored. */
  async finish(): Promise<void> {
    await this.drain();
    await this.storing;
  }

  /** Sends the gathered blobs in the source's order (pack, then offset), a batch at a time. */
  private async drain(): Promise<void> {
    const blobs = this.gathered.sort((a, b) => a.loc.packId.compare(b.loc.packId) || a.loc.offset - b.loc.offset);
    this.gathered = [];
    let batch: Buffer[] = [];
    let bytes = 0;
    for (const { id, loc } of blobs) {
      batch.push(id);
      bytes += loc.length;
      if (bytes >= this.batchBytes) {
        await this.send(batch);
        batch = [];
        bytes = 0;
      }
    }
    await this.send(batch);
  }

  private async send(ids: Buffer[]): Promise<void> {
    if (ids.length === 0) return;
    const reading = this.source.readBlobsAs(ids, this.steps.recode, this.limits);
    reading.catch(() => undefined); // Awaited below, once the previous batch is stored.
    await this.storing;
    const blobs = await reading;
    this.storing = (async () => {
      for (const [i, id] of ids.entries()) {
        await this.steps.store(id, blobs[i] as RecodedBlob);
        this.queued.delete(id.toString('hex'));
      }
    })();
    this.storing.catch(() => undefined); // Awaited by the next send or by finish.
  }
}

/** Data blobs gathered before they are sorted and copied: bounds the list (~150 bytes a blob). */
const GATHERED = 1 << 16;
