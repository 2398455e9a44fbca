import { blobId } from '../crypto/master-key.ts';
import { sealBlob, type BlobType } from '../blob/blob-codec.ts';
import type { BlobWriter } from '../blob-writer.ts';
import { BlobNotFoundError } from '../errors.ts';
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
   * Data read from the source in one batch, counted as the larger of each blob's stored and
   * plain size (default 16 MiB). One batch is read while the one before is sealed and stored,
   * so this and the writer's packs bound what a copy holds, whatever the number of blobs.
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
 * collects the data blobs and copies them in batches read a pack range at a time (one batch read
 * while the previous one is stored); the second rewrites the trees from the deepest level up, when
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
    const data = new DataBatches(this.source, this.batchBytes, readLimits(this.source.config.packSize), (id, plain) => this.storeData(id, plain));
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

  private async storeData(sourceId: Buffer, plaintext: Buffer): Promise<void> {
    this.stats.blobsRead++;
    this.translated.set(sourceId.toString('hex'), await this.store(plaintext, 'data'));
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

/**
 * Source data blobs gathered into batches of about `batchBytes`, each read with few requests
 * (Repository.readBlobs with `limits`) and handed to `store` blob by blob; the next batch is read
 * while the last one is stored, never more than one ahead.
 */
class DataBatches {
  private readonly source: Repository;
  private readonly batchBytes: number;
  private readonly limits: RangeLimits;
  private readonly store: (id: Buffer, plaintext: Buffer) => Promise<void>;
  private batch: Buffer[] = [];
  private bytes = 0;
  /** IDs in the batch being gathered or read, so a blob two files share is read once. */
  private readonly queued = new Set<string>();
  private storing: Promise<void> = Promise.resolve();

  constructor(source: Repository, batchBytes: number, limits: RangeLimits, store: (id: Buffer, plaintext: Buffer) => Promise<void>) {
    this.source = source;
    this.batchBytes = batchBytes;
    this.limits = limits;
    this.store = store;
  }

  async add(id: Buffer): Promise<void> {
    const key = id.toString('hex');
    if (this.queued.has(key)) return;
    const loc = this.source.locate(id);
    if (!loc) throw new BlobNotFoundError(key);
    this.queued.add(key);
    this.batch.push(id);
    this.bytes += Math.max(loc.length, loc.rawLength);
    if (this.bytes >= this.batchBytes) await this.send();
  }

  /** Reads and stores what is left, and waits for every batch to be stored. */
  async finish(): Promise<void> {
    await this.send();
    await this.storing;
  }

  private async send(): Promise<void> {
    const ids = this.batch;
    this.batch = [];
    this.bytes = 0;
    if (ids.length === 0) return;
    const reading = this.source.readBlobs(ids, this.limits);
    reading.catch(() => undefined); // Awaited below, once the previous batch is stored.
    await this.storing;
    const plains = await reading;
    this.storing = (async () => {
      for (const [i, id] of ids.entries()) {
        await this.store(id, plains[i] as Buffer);
        plains[i] = EMPTY; // Its memory goes as soon as it is sealed.
        this.queued.delete(id.toString('hex'));
      }
    })();
    this.storing.catch(() => undefined); // Awaited by the next send or by finish.
  }
}

const EMPTY = Buffer.alloc(0);
