import { blobId } from '../crypto/master-key.ts';
import { sealBlob, type BlobType } from '../blob/blob-codec.ts';
import type { BlobWriter } from '../blob-writer.ts';
import { mapLimit, type Repository } from '../repository.ts';
import type { StoredSnapshot } from '../snapshot/snapshot.ts';
import { encodeTree, type TreeNode } from '../tree/tree.ts';

/** Tree entries copied at once within one directory. */
const ENTRIES_IN_FLIGHT = 8;

export interface CopyStats {
  snapshotsCopied: number;
  snapshotsSkipped: number;
  blobsRead: number;
  blobsStored: number;
}

/**
 * Copies snapshots between repositories with different keys (and chunker parameters, possibly).
 * Blob IDs are keyed per repository, so every tree is rewritten with the destination's IDs; data is
 * decrypted from the source and re-sealed for the destination, and stored there only if the
 * destination does not have it. An interrupted copy leaves indexed packs that the next run reuses;
 * a snapshot already copied (its `original` is the source ID) is skipped, so copying twice adds
 * nothing.
 */
export class SnapshotCopier {
  readonly stats: CopyStats = { snapshotsCopied: 0, snapshotsSkipped: 0, blobsRead: 0, blobsStored: 0 };
  private readonly source: Repository;
  private readonly dest: Repository;
  private readonly writer: BlobWriter;
  /** Source blob ID → destination blob ID, for blobs met earlier in this run. */
  private readonly translated = new Map<string, Buffer>();

  constructor(source: Repository, dest: Repository, writer: BlobWriter) {
    this.source = source;
    this.dest = dest;
    this.writer = writer;
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
    const tree = await this.copyTree(Buffer.from(stored.snapshot.tree, 'hex'));
    this.stats.snapshotsCopied++;
    return { ...stored.snapshot, tree: tree.toString('hex'), parent: undefined, original: stored.snapshot.original ?? stored.id };
  }

  private async copyTree(sourceId: Buffer): Promise<Buffer> {
    const done = this.translated.get(sourceId.toString('hex'));
    if (done) return done;
    const tree = await this.source.loadTree(sourceId);
    this.stats.blobsRead++;
    // Several entries at once: each read is a round trip to the source storage.
    const nodes = await mapLimit(tree.nodes, ENTRIES_IN_FLIGHT, async (node): Promise<TreeNode> => {
      if (node.type === 'dir') return { ...node, subtree: await this.copyTree(node.subtree) };
      if (node.type !== 'file') return node;
      const content: Buffer[] = [];
      for (const id of node.content) content.push(await this.copyBlob(id, 'data'));
      return { ...node, content };
    });
    const destId = await this.store(encodeTree({ nodes }), 'tree');
    this.translated.set(sourceId.toString('hex'), destId);
    return destId;
  }

  private async copyBlob(sourceId: Buffer, type: BlobType): Promise<Buffer> {
    const done = this.translated.get(sourceId.toString('hex'));
    if (done) return done;
    const plaintext = await this.source.readBlob(sourceId);
    this.stats.blobsRead++;
    const destId = await this.store(plaintext, type);
    this.translated.set(sourceId.toString('hex'), destId);
    return destId;
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
