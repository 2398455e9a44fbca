import { closeSync, lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import type { SealedBlob } from '../../repository/blob/blob-codec.ts';
import { encodeTree, type NodeMeta, type TreeNode } from '../../repository/tree/tree.ts';
import { isExcluded } from '../fs/exclude.ts';
import { nodeTypeOf, packStat, STAT_SLOTS } from '../fs/entry-stat.ts';
import { metaOf } from '../fs/node-meta.ts';
import { atPath, openDirAt } from '../fs/handles.ts';
import {
  failureOf, splitIds, type ChunkFileResult, type ChunkFileTask, type SavedCounts, type ScanDirResult, type ScanDirTask, type ScannedDir, type ScannedOutcome,
  type StoredBlobMessage,
} from './messages.ts';

/** Sealed blobs of small files travel to the main thread in batches of about this size. */
const STORE_BATCH = 1 << 20;

/**
 * What the worker lends a scan: its file chunker and its line to the main thread. The main
 * thread lists directories itself without these (listDirHere), and then reads no file.
 */
export interface ScanDeps {
  /** Chunks and seals a whole file without asking (ChunkFileTask.sealUnasked). */
  readonly readFile: (file: Omit<ChunkFileTask, 'kind' | 'sealUnasked'>) => Promise<ChunkFileResult>;
  /** Hands sealed blobs on (data to the worker's spool if claimed, trees to the main thread) and waits until they are taken. */
  readonly store: (blobs: readonly StoredBlobMessage[]) => Promise<void>;
  /** Hashes and seals an encoded tree. */
  readonly sealTree: (bytes: Buffer) => SealedBlob;
}

/** Blobs read so far and not yet handed on. */
class BlobBatch {
  private blobs: StoredBlobMessage[] = [];
  private bytes = 0;

  add(blobs: readonly StoredBlobMessage[]): void {
    this.blobs.push(...blobs);
    for (const blob of blobs) this.bytes += blob.sealed.byteLength;
  }

  addTree(tree: SealedBlob): void {
    this.add([{ isTree: true, id: tree.id, sealed: tree.sealed, rawLength: tree.rawLength }]);
  }

  async sendIfFull(deps: ScanDeps): Promise<void> {
    if (this.bytes >= STORE_BATCH) await this.send(deps);
  }

  async send(deps: ScanDeps): Promise<void> {
    if (this.blobs.length === 0) return;
    await deps.store(this.blobs);
    this.blobs = [];
    this.bytes = 0;
  }
}

/**
 * Runs a ScanDirTask in a worker, with synchronous calls: a worker has nothing else to do
 * meanwhile that would not also wait for the disk, and one call costs a few microseconds where
 * a promise round trip through the thread pool costs tens.
 */
export async function scanDir(request: ScanDirTask, deps: ScanDeps): Promise<{ result: ScanDirResult; transfer: ArrayBuffer[] }> {
  const batch = new BlobBatch();
  const budget = { entries: request.descendUpTo };
  const { listing } = await listDir({ path: Buffer.from(request.path), fd: request.dirFd }, request.dev, request, budget, batch, deps, false);
  await batch.send(deps);
  return { result: { kind: 'scan-dir', ...listing }, transfer: [] };
}

/**
 * Lists one directory in the calling thread (lstat and symlink targets, no file read, no
 * descent). For a directory the parent snapshot has, where most files are usually unchanged,
 * this is cheaper than a message to a worker, and a backup in which nothing changed never
 * starts the workers at all.
 */
export async function listDirHere(dir: OpenDir, excludes: readonly string[]): Promise<ScannedDir> {
  const request: ScanDirTask = { kind: 'scan-dir', path: dir.path, dirFd: dir.fd, dev: 0n, excludes, readUpTo: -1, withAtime: false, descendUpTo: 0 };
  return (await listDir(dir, 0n, request, { entries: 0 }, new BlobBatch(), undefined, false)).listing;
}

/** A directory being listed: its path (for excludes and messages) and the handle it is read through. */
export interface OpenDir {
  readonly path: Buffer;
  readonly fd: number;
}

/**
 * A listed directory, and when its tree may be saved here (a subdirectory the scan took along)
 * and every entry in it could be dealt with here (no failure, no file left to the main thread),
 * the nodes of its tree and what they hold.
 */
interface Listed {
  readonly listing: ScannedDir;
  readonly complete: { readonly nodes: TreeNode[]; readonly counts: SavedCounts } | undefined;
}

/** An entry of a directory being listed: its path for messages, and where it is through the directory's handle. */
interface Entry {
  /** The directory's path with a trailing slash: the entry's path is this and its name (made only when needed). */
  readonly dirPrefix: Buffer;
  readonly dirFd: number;
  readonly name: Buffer;
}

/** A tree node without the metadata every node has (metaOf): what is particular to its type. */
type NodeBody = TreeNode extends infer T ? (T extends TreeNode ? Omit<T, keyof NodeMeta> : never) : never;

/** An entry's outcome, and its tree node's body when the entry is complete (see Listed). */
interface Scanned {
  readonly outcome: ScannedOutcome;
  readonly node?: NodeBody;
  readonly counts?: SavedCounts;
}

async function listDir(
  dir: OpenDir, dev: bigint, request: ScanDirTask, budget: { entries: number }, batch: BlobBatch, deps: ScanDeps | undefined, keepNodes: boolean,
): Promise<Listed> {
  const prefix = dir.path.at(-1) === 0x2f ? dir.path : Buffer.concat([dir.path, Buffer.from('/')]);
  const listed = readdirSync(atPath(dir.fd), { encoding: 'buffer' });
  const names = request.excludes.length === 0 ? listed : listed.filter((name) => !isExcluded(Buffer.concat([prefix, name]), request.excludes));
  // The handle's path, made once for all entries.
  const at = atPath(dir.fd, Buffer.alloc(0));
  budget.entries -= names.length;
  const stats = new BigInt64Array(names.length * STAT_SLOTS);
  const outcomes: ScannedOutcome[] = [];
  // The directory a listing starts at is saved by the main thread: no nodes for it.
  let nodes: TreeNode[] | undefined = keepNodes ? [] : undefined;
  const counts = { dirs: 1, files: 0, bytes: 0 };
  for (const [i, name] of names.entries()) {
    let st: BigIntStats;
    try {
      st = lstatSync(Buffer.concat([at, name]), { bigint: true });
    } catch (err) {
      outcomes.push({ kind: 'stat-failed', failure: failureOf(err) });
      nodes = undefined;
      continue;
    }
    packStat(st, stats, i);
    const scanned = await scanEntry({ dirPrefix: prefix, dirFd: dir.fd, name }, st, dev, request, budget, batch, deps);
    outcomes.push(scanned.outcome);
    if (scanned.node === undefined) nodes = undefined;
    else nodes?.push({ ...metaOf(name, st, request.withAtime), ...scanned.node });
    counts.dirs += scanned.counts?.dirs ?? 0;
    counts.files += scanned.counts?.files ?? 0;
    counts.bytes += scanned.counts?.bytes ?? 0;
    if (deps) await batch.sendIfFull(deps);
  }
  // Memory of its own: a message would clone all of Buffer's shared pool behind a small concat.
  const packedNames = Buffer.allocUnsafeSlow(names.reduce((sum, name) => sum + name.length, 0));
  const nameEnds = new Uint32Array(names.length);
  let end = 0;
  names.forEach((name, i) => {
    end += name.copy(packedNames, end);
    nameEnds[i] = end;
  });
  return { listing: { names: packedNames, nameEnds, stats, outcomes }, complete: nodes && { nodes, counts } };
}

/**
 * What a scan does with one entry beyond lstat. The node it returns, when the entry is complete,
 * holds only the type-specific fields: listDir adds the metadata.
 */
async function scanEntry(
  entry: Entry, st: BigIntStats, dev: bigint, request: ScanDirTask, budget: { entries: number }, batch: BlobBatch, deps: ScanDeps | undefined,
): Promise<Scanned> {
  const type = nodeTypeOf(st);
  switch (type) {
    case 'symlink':
      try {
        const target = readlinkSync(atPath(entry.dirFd, entry.name), { encoding: 'buffer' });
        return { outcome: { kind: 'symlink', target }, node: { type, linkTarget: target } };
      } catch (err) {
        return { outcome: { kind: 'read-failed', failure: failureOf(err) } };
      }
    case 'dir':
      return scanSubdir(entry, st, dev, request, budget, batch, deps);
    case 'chardev':
    case 'blockdev':
      return { outcome: null, node: { type, rdev: st.rdev } };
    case 'fifo':
    case 'socket':
      return { outcome: null, node: { type } };
    case 'file':
      break;
  }
  if (!deps || st.size > BigInt(request.readUpTo) || st.nlink > 1n) return { outcome: null };
  try {
    const result = await deps.readFile({ path: atPath(entry.dirFd, entry.name), dev: st.dev, ino: st.ino, size: Number(st.size) });
    batch.add(result.blobs);
    return {
      outcome: { kind: 'read', content: result.content, size: result.size },
      node: { type, size: result.size, content: splitIds(result.content) },
      counts: { dirs: 0, files: 1, bytes: result.size },
    };
  } catch (err) {
    return { outcome: { kind: 'read-failed', failure: failureOf(err) } };
  }
}

/**
 * Lists a subdirectory in the same task while the budget lasts. When everything in it was dealt
 * with here, its tree is saved here too, and the main thread gets just the tree's ID.
 */
async function scanSubdir(
  entry: Entry, st: BigIntStats, dev: bigint, request: ScanDirTask, budget: { entries: number }, batch: BlobBatch, deps: ScanDeps | undefined,
): Promise<Scanned> {
  // Another file system (a mount point) and unreadable directories are left to the main thread.
  if (!deps || budget.entries <= 0 || st.dev !== dev) return { outcome: null };
  let listed: Listed;
  let fd: number;
  try {
    fd = openDirAt(entry.dirFd, entry.name, st);
  } catch {
    return { outcome: null };
  }
  try {
    listed = await listDir({ path: Buffer.concat([entry.dirPrefix, entry.name]), fd }, dev, request, budget, batch, deps, true);
  } catch {
    return { outcome: null };
  } finally {
    closeSync(fd);
  }
  if (!listed.complete) return { outcome: { kind: 'dir', listing: listed.listing } };
  const tree = deps.sealTree(encodeTree({ nodes: listed.complete.nodes }));
  batch.addTree(tree);
  return {
    outcome: { kind: 'saved-dir', subtree: tree.id, counts: listed.complete.counts },
    node: { type: 'dir', subtree: tree.id },
    counts: listed.complete.counts,
  };
}
