import { BlobWriter } from '../blob-writer.ts';
import { blobId } from '../crypto/master-key.ts';
import { sealBlob } from '../blob/blob-codec.ts';
import type { IndexPack } from '../index/index.ts';
import { DATA_PREFIX, idOfName, INDEX_PREFIX, packName, snapshotName } from '../object-names.ts';
import { readPackHeader } from '../pack/pack-reader.ts';
import type { Repository } from '../repository.ts';
import { Lease, type LeaseOptions } from './leases.ts';
import type { Snapshot } from '../snapshot/snapshot.ts';
import { encodeTree, type TreeNode } from '../tree/tree.ts';

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
/** Index files written by repair hold at most this many blobs each. */
const BLOBS_PER_INDEX_FILE = 200_000;

export interface IndexRepairReport {
  packsRead: number;
  blobsIndexed: number;
  /** Packs whose header could not be read; their entries from old index files are kept if any. */
  packsUnreadable: Array<{ pack: string; message: string }>;
  indexFilesRemoved: number;
  indexFilesWritten: number;
}

/**
 * Rebuilds the index from the packs' own headers and replaces every index file that existed when
 * it started. Index files written meanwhile by running backups are left alone; a pack whose header
 * is unreadable keeps whatever entries the old index files had for it. A dry run reads the same
 * and reports what it would write and replace, writing and deleting nothing.
 */
export async function repairIndex(
  repo: Repository, leaseOptions: LeaseOptions, log: (line: string) => void = () => undefined, { dryRun = false }: { dryRun?: boolean } = {},
): Promise<IndexRepairReport> {
  if (dryRun) return rebuildIndex(repo, undefined, log);
  // Like a prune, it changes what the index says about existing packs: never two at once.
  const lease = await Lease.acquireExclusive(repo, 'repair-index', leaseOptions);
  try {
    return await rebuildIndex(repo, lease, log);
  } finally {
    await lease.release();
  }
}

/** The work of repairIndex: under `lease`, or a dry run without one that writes and deletes nothing. */
async function rebuildIndex(repo: Repository, lease: Lease | undefined, log: (line: string) => void): Promise<IndexRepairReport> {
  const report: IndexRepairReport = { packsRead: 0, blobsIndexed: 0, packsUnreadable: [], indexFilesRemoved: 0, indexFilesWritten: 0 };
  const oldFiles: string[] = [];
  const oldEntries = new Map<string, IndexPack>();
  for await (const obj of repo.storage.list(INDEX_PREFIX)) {
    if (idOfName(obj.name) === undefined) continue;
    oldFiles.push(obj.name);
    try {
      for (const pack of await repo.readIndexFile(obj.name)) oldEntries.set(pack.packId.toString('hex'), pack);
    } catch (err) {
      log(`index ${obj.name} is unreadable and will be replaced: ${errorText(err)}`);
    }
  }
  const packs: IndexPack[] = [];
  for await (const obj of repo.storage.list(DATA_PREFIX)) {
    const id = idOfName(obj.name);
    if (id === undefined) continue;
    try {
      const blobs = await readPackHeader(repo.storage, repo.keys.encKey, packName(id), obj.size);
      packs.push({ packId: Buffer.from(id, 'hex'), blobs: [...blobs] });
      report.packsRead++;
    } catch (err) {
      report.packsUnreadable.push({ pack: id, message: errorText(err) });
      const kept = oldEntries.get(id);
      if (kept) packs.push(kept);
    }
  }
  await lease?.pause('repair-packs-read');
  let batch: IndexPack[] = [];
  let count = 0;
  const superseded = oldFiles.map((name) => Buffer.from(idOfName(name) ?? '', 'hex'));
  for (const pack of packs) {
    if (count + pack.blobs.length > BLOBS_PER_INDEX_FILE && batch.length > 0) {
      if (lease) await repo.writeIndexFile(batch, { supersedes: superseded });
      report.indexFilesWritten++;
      batch = [];
      count = 0;
    }
    batch.push(pack);
    count += pack.blobs.length;
    report.blobsIndexed += pack.blobs.length;
  }
  if (batch.length > 0) {
    if (lease) await repo.writeIndexFile(batch, { supersedes: superseded });
    report.indexFilesWritten++;
  }
  if (lease) {
    await lease.confirm();
    for (const name of oldFiles) await repo.storage.delete(name);
  }
  report.indexFilesRemoved = oldFiles.length;
  return report;
}

export interface SnapshotRepairResult {
  readonly snapshot: string;
  /** The repaired snapshot's ID, or undefined when nothing was lost (or on a dry run). */
  readonly replacedBy: string | undefined;
  readonly filesRemoved: readonly string[];
  readonly dirsEmptied: readonly string[];
}

/**
 * Rewrites snapshots that reference lost data: a file with any lost chunk is dropped, a directory
 * whose listing is lost becomes empty, and the new snapshot records both (`repaired`) and carries
 * the tag "repaired". Everything else stays restorable. The damaged snapshot is deleted after its
 * replacement is stored.
 */
export class SnapshotRepairer {
  private readonly repo: Repository;
  private readonly lost: ReadonlySet<string>;
  private readonly writer: BlobWriter;
  private readonly lease: Lease | undefined;

  /**
   * `lost`: hex IDs of blobs that cannot be read (from `Checker`), besides those in no index.
   * `lease`: checked before each repaired snapshot is written (see Lease.assertFresh).
   */
  constructor(repo: Repository, lost: ReadonlySet<string>, lease?: Lease) {
    this.repo = repo;
    this.lost = lost;
    this.writer = new BlobWriter(repo);
    this.lease = lease;
  }

  async repair(id: string, dryRun: boolean): Promise<SnapshotRepairResult> {
    const snapshot = await this.repo.loadSnapshot(id);
    const filesRemoved: string[] = [];
    const dirsEmptied: string[] = [];
    const root = await this.rewriteTree(Buffer.from(snapshot.tree, 'hex'), '', filesRemoved, dirsEmptied, dryRun);
    if ((filesRemoved.length === 0 && dirsEmptied.length === 0) || dryRun) return { snapshot: id, replacedBy: undefined, filesRemoved, dirsEmptied };
    await this.writer.flush();
    const repaired: Snapshot = {
      ...snapshot,
      tree: root.toString('hex'),
      tags: snapshot.tags.includes('repaired') ? snapshot.tags : [...snapshot.tags, 'repaired'],
      original: snapshot.original ?? id,
      repaired: { time: new Date().toISOString(), files_removed: filesRemoved, dirs_emptied: dirsEmptied },
    };
    this.lease?.assertFresh();
    const replacedBy = await this.repo.saveSnapshot(repaired);
    await this.repo.storage.delete(snapshotName(id));
    return { snapshot: id, replacedBy, filesRemoved, dirsEmptied };
  }

  private usable(id: Buffer): boolean {
    return this.repo.locate(id) !== undefined && !this.lost.has(id.toString('hex'));
  }

  private async rewriteTree(treeId: Buffer, path: string, filesRemoved: string[], dirsEmptied: string[], dryRun: boolean): Promise<Buffer> {
    let nodes: readonly TreeNode[];
    try {
      if (!this.usable(treeId)) throw new Error('lost');
      nodes = (await this.repo.loadTree(treeId)).nodes;
    } catch {
      dirsEmptied.push(path || '/');
      return this.storeTree([], dryRun);
    }
    const kept: TreeNode[] = [];
    let changed = false;
    for (const node of nodes) {
      const childPath = `${path}/${node.name.toString()}`;
      if (node.type === 'file' && !node.content.every((id) => this.usable(id))) {
        filesRemoved.push(childPath);
        changed = true;
      } else if (node.type === 'dir') {
        const before = filesRemoved.length + dirsEmptied.length;
        const subtree = await this.rewriteTree(node.subtree, childPath, filesRemoved, dirsEmptied, dryRun);
        changed ||= filesRemoved.length + dirsEmptied.length !== before;
        kept.push({ ...node, subtree });
      } else kept.push(node);
    }
    return changed ? this.storeTree(kept, dryRun) : treeId;
  }

  private async storeTree(nodes: TreeNode[], dryRun: boolean): Promise<Buffer> {
    const bytes = encodeTree({ nodes });
    const id = blobId(this.repo.keys.idKey, bytes);
    if (!dryRun && this.writer.claim(id)) await this.writer.add('tree', sealBlob(this.repo.keys, id, bytes, this.repo.config.compression.level));
    return id;
  }
}
