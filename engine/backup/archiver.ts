import os from 'node:os';
import path from 'node:path';
import { closeSync, fstatSync, lstatSync, readlinkSync, promises as fsp } from 'node:fs';
import { blobId } from '../../repository/crypto/master-key.ts';
import { sealBlob } from '../../repository/blob/blob-codec.ts';
import { releaseBuffer } from '../../repository/util/release-buffer.ts';
import type { BlobWriter } from '../../repository/blob-writer.ts';
import { ArcaError, throwIfCanceled, UsageError } from '../../repository/errors.ts';
import type { Lease } from '../../repository/maintenance/leases.ts';
import type { Repository } from '../../repository/repository.ts';
import type { BackupSummary, RootDirMeta, Snapshot, SnapshotLabels, StoredSnapshot } from '../../repository/snapshot/snapshot.ts';
import { encodeTree, type FileNode, type NodeMeta, type Tree, type TreeNode } from '../../repository/tree/tree.ts';
import { Semaphore } from '../../repository/util/semaphore.ts';
import { SPOOL_FAILED, splitIds, type SavedCounts, type ScanDirResult, type ScannedDir, type SpooledPackMessage, type StoredBlobMessage, type TaskAnswer, type TaskQuestion } from '../pool/messages.ts';
import { listDirHere, type OpenDir } from '../pool/scan-dir.ts';
import { WorkerTaskError, type WorkerPool } from '../pool/worker-pool.ts';
import { nodeTypeOf, unpackStat, type EntryStat } from '../fs/entry-stat.ts';
import { metaOf } from '../fs/node-meta.ts';
import { atPath, openDirAt, openDirPath } from '../fs/handles.ts';
import { descriptorBudget } from '../fs/fd-limit.ts';
import type { Reporter } from '../progress.ts';
import { scanTotals, type ScanTotals } from './scanner.ts';
import { VERSION } from '../version.ts';

export const PROGRAM_VERSION = `arca ${VERSION}`;

export interface BackupOptions {
  readonly paths: readonly string[];
  /**
   * Take the one path, a directory, as the snapshot's root (Snapshot.root): the tree is its
   * contents, wherever it lies. Default: the tree mirrors the absolute paths, as restic's does.
   */
  readonly asRoot?: boolean | undefined;
  readonly tags?: readonly string[];
  readonly host?: string;
  /** Snapshot to compare against; by default the newest one of the same host and paths. */
  readonly parent?: StoredSnapshot | undefined;
  readonly excludes?: readonly string[];
  /** Stay on the filesystem of each given path (default true). */
  readonly oneFileSystem?: boolean;
  /** Record access times (default: recorded as the modification time, see metaOf). */
  readonly withAtime?: boolean;
  readonly time?: Date;
  /** Count the files and bytes first, in parallel, so progress can show totals and an ETA. */
  readonly scan?: boolean;
  /** The writer's lease: checked before the snapshot is written (see Lease.assertFresh). */
  readonly lease?: Lease | undefined;
  /** zstd level of the trees written here (the pool's setup has the workers'); default: the repository's. */
  readonly compressionLevel?: number;
  /** Arbitrary key/value metadata recorded in the snapshot (e.g. the Kubernetes volume it is of). */
  readonly labels?: SnapshotLabels | undefined;
  /**
   * Cancels the walk: checked between directories and files (the pool and the storage calls
   * are cancelled by whoever owns them, see backupVolume).
   */
  readonly signal?: AbortSignal | undefined;
}

export interface BackupResult {
  readonly snapshotId: string;
  readonly snapshot: Snapshot;
  readonly summary: BackupSummary;
}

interface Counters {
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  dirs_new: number;
  dirs_changed: number;
  dirs_unmodified: number;
  total_files_processed: number;
  total_bytes_processed: number;
  files_unreadable: number;
}

const SLASH = Buffer.from('/');
/** A name as a map key: latin1 maps each byte to one character, cheaper than hex and as exact. */
const nameKey = (name: Buffer): string => name.toString('latin1');
const join = (dir: Buffer, name: Buffer): Buffer => (dir.equals(SLASH) ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]));
/** Subdirectories of one directory saved at once. */
const SUBDIRS_IN_FLIGHT = 4;
/**
 * Subdirectories saved beside their parent's other work in the whole backup; past this, a
 * subdirectory is saved before its parent goes on. Each directory in progress holds its handle,
 * so descriptors held stay below (this + 1) × the depth of the tree, whatever its size.
 */
const DIRS_IN_PARALLEL = descriptorBudget(1 / 8, 32);
/**
 * Files up to this size are sealed in the worker without first asking whether their blob is
 * new: a round trip to the main thread costs more than compressing a few KiB for nothing.
 */
const SEAL_UNASKED_UP_TO = 64 << 10;
/**
 * A new directory's scan takes its subdirectories along until it has listed this many entries
 * (ScanDirTask.descendUpTo): a small subtree costs one message, and large ones still spread
 * over the workers a directory at a time.
 */
const DESCEND_UP_TO = 256;

/**
 * Parent trees read ahead below a tree that was read on its own, and at most this many held
 * at once (trees of directories that no longer exist are never taken).
 */
const READ_AHEAD_TREES = 1024;
const READ_AHEAD_HELD = 8192;

/** A file's chunk IDs and the bytes they hold. */
interface FileContent {
  readonly ids: readonly Buffer[];
  readonly size: number;
}

const sameIds = (a: readonly Buffer[], b: readonly Buffer[]): boolean => a === b || (a.length === b.length && a.every((id, i) => b[i]?.equals(id)));

/** Whether two nodes would encode identically (so a tree made of them is the same blob). */
function sameNode(a: TreeNode, b: TreeNode | undefined): boolean {
  if (!b || a.type !== b.type || !a.name.equals(b.name) || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid
    || a.user !== b.user || a.group !== b.group || a.mtimeNs !== b.mtimeNs || a.atimeNs !== b.atimeNs || a.ctimeNs !== b.ctimeNs
    || a.inode !== b.inode || a.deviceId !== b.deviceId || a.links !== b.links) return false;
  switch (a.type) {
    case 'file': return b.type === 'file' && a.size === b.size && sameIds(a.content, b.content);
    case 'dir': return b.type === 'dir' && a.subtree.equals(b.subtree);
    case 'symlink': return b.type === 'symlink' && a.linkTarget.equals(b.linkTarget);
    case 'chardev':
    case 'blockdev': return (b.type === 'chardev' || b.type === 'blockdev') && a.rdev === b.rdev;
    case 'fifo':
    case 'socket': return true;
  }
}

/**
 * Walks the given paths with lstat (never following symlinks), reads changed files through the
 * worker pool, writes one tree per directory bottom-up, and finally the snapshot.
 * A file that cannot be read is reported and left out; the backup goes on.
 */
export class Archiver {
  private readonly repo: Repository;
  private readonly pool: WorkerPool;
  private readonly writer: BlobWriter;
  private readonly reporter: Reporter;
  private readonly fileSlots: Semaphore;
  private readonly counters: Counters = {
    files_new: 0, files_changed: 0, files_unmodified: 0, dirs_new: 0, dirs_changed: 0, dirs_unmodified: 0,
    total_files_processed: 0, total_bytes_processed: 0, files_unreadable: 0,
  };
  /** Trees of the parent snapshot read ahead of the walk (readAheadBelow), by ID in hex. */
  private readonly readAhead = new Map<string, Promise<Tree | undefined>>();
  /** Content of files with several hard links, by "dev:ino", so each is read once. */
  private readonly hardlinks = new Map<string, Promise<FileContent | undefined>>();
  private excludes: readonly string[] = [];
  private oneFileSystem = true;
  private withAtime = false;
  private compressionLevel = 0;
  private signal: AbortSignal | undefined;
  private started = 0;
  /** Bytes of files read so far or found unchanged: what progress shows as done. */
  private bytesDone = 0;
  private totals: ScanTotals | undefined;
  /** Subdirectories being saved beside their parent's other work (DIRS_IN_PARALLEL). */
  private dirsInParallel = 0;

  /** `pool` must spool (workerSetupFor with a spool directory, see withSpoolDir). */
  constructor(repo: Repository, pool: WorkerPool, writer: BlobWriter, reporter: Reporter = {}) {
    if (!pool.spooling) throw new ArcaError('ARCA_ERR_WORKER_PROTOCOL', 'A backup needs a worker pool that spools packs (give workerSetupFor a spool directory).');
    this.repo = repo;
    this.pool = pool;
    this.writer = writer;
    this.reporter = reporter;
    this.fileSlots = new Semaphore(pool.size * 8);
  }

  async run(options: BackupOptions): Promise<BackupResult> {
    if (options.paths.length === 0) throw new UsageError('Give at least one path to back up.');
    this.started = performance.now();
    this.excludes = options.excludes ?? [];
    this.oneFileSystem = options.oneFileSystem ?? true;
    this.withAtime = options.withAtime ?? false;
    this.compressionLevel = options.compressionLevel ?? this.repo.config.compression.level;
    this.signal = options.signal;
    const paths = [...new Set(options.paths.map((p) => path.resolve(p)))].sort();
    for (const p of paths) {
      await fsp.lstat(p).catch((err: unknown) => {
        throw new UsageError(`Cannot back up ${p}: ${err instanceof Error ? err.message : String(err)}.`);
      });
    }
    if (options.asRoot === true && paths.length !== 1) throw new UsageError(`Only one directory can be a snapshot's root; ${paths.length} paths were given.`);
    // A parent's tree serves only a backup of the same shape (rooted at the directory, or at `/`).
    const parentTree = options.parent && (options.parent.snapshot.root !== undefined) === (options.asRoot === true)
      ? Buffer.from(options.parent.snapshot.tree, 'hex') : undefined;
    const progressTimer = setInterval(() => { this.reportProgress(); }, 1000);
    const stopScan = new AbortController();
    if (options.scan === true) {
      const signal = options.signal === undefined ? stopScan.signal : AbortSignal.any([stopScan.signal, options.signal]);
      void scanTotals(paths, { excludes: this.excludes, oneFileSystem: this.oneFileSystem, signal }).then((totals) => { this.totals = totals; });
    }
    let root: Buffer;
    let rootMeta: RootDirMeta | undefined;
    try {
      const [only] = paths;
      if (options.asRoot === true && only !== undefined) ({ tree: root, meta: rootMeta } = await this.saveRootDir(only, parentTree));
      else root = await this.saveVirtualDir(SLASH, paths.map((p) => p.split('/').filter(Boolean)), parentTree);
      await this.pool.flushSpools(async (question) => {
        if (question.kind !== 'pack') throw new ArcaError('ARCA_ERR_WORKER_PROTOCOL', `A spool flush asked "${question.kind}".`);
        return this.storeSpooled(question.pack);
      });
      await this.writer.flush();
    } finally {
      clearInterval(progressTimer);
      stopScan.abort();
    }
    const summary: BackupSummary = {
      ...this.counters,
      data_blobs: this.writer.stats.dataBlobs,
      tree_blobs: this.writer.stats.treeBlobs,
      data_added: this.writer.stats.bytesAdded,
    };
    const snapshot: Snapshot = {
      version: 1,
      time: (options.time ?? new Date()).toISOString(),
      tree: root.toString('hex'),
      paths,
      ...(rootMeta === undefined ? {} : { root: rootMeta }),
      hostname: options.host ?? os.hostname(),
      username: os.userInfo().username,
      tags: [...(options.tags ?? [])],
      ...(options.labels !== undefined && Object.keys(options.labels).length > 0 ? { labels: { ...options.labels } } : {}),
      parent: options.parent?.id,
      program_version: PROGRAM_VERSION,
      summary,
    };
    throwIfCanceled(this.signal);
    options.lease?.assertFresh();
    const snapshotId = await this.repo.saveSnapshot(snapshot);
    this.reportProgress();
    return { snapshotId, snapshot, summary };
  }

  /** Files and bytes looked at so far (all of them once run() has returned). */
  get processed(): { readonly files: number; readonly bytes: number } {
    return { files: this.counters.total_files_processed, bytes: this.counters.total_bytes_processed };
  }

  private reportProgress(): void {
    this.reporter.progress?.({
      filesDone: this.counters.total_files_processed,
      bytesDone: this.bytesDone,
      filesTotal: this.totals?.files,
      bytesTotal: this.totals?.bytes,
      elapsedSeconds: (performance.now() - this.started) / 1000,
    });
  }

  /**
   * Saves the directory `dir`, which lies on the way to the backed-up paths. `rests` are the
   * remaining components of each path below it; an empty rest means `dir` itself is backed up.
   */
  private async saveVirtualDir(dir: Buffer, rests: string[][], parentTree: Buffer | undefined): Promise<Buffer> {
    const parentNodes = await this.loadParentNodes(parentTree);
    const byChild = new Map<string, string[][]>();
    for (const rest of rests) {
      const [first, ...more] = rest;
      if (first === undefined) continue;
      const group = byChild.get(first) ?? [];
      group.push(more);
      byChild.set(first, group);
    }
    const nodes = await Promise.all([...byChild].map(async ([childName, childRests]): Promise<TreeNode | undefined> => {
      const name = Buffer.from(childName);
      const full = join(dir, name);
      const parentNode = parentNodes.get(nameKey(name));
      if (childRests.some((r) => r.length === 0)) {
        // A path the user named: from its parent down, everything is read through handles.
        const parent = { path: dir, fd: openDirPath(dir, undefined) };
        try {
          const st = lstatSync(atPath(parent.fd, name), { bigint: true });
          return await this.saveEntry(parent, name, st, parentNode, st.dev);
        } finally {
          closeSync(parent.fd);
        }
      }
      const childStat = await fsp.lstat(full, { bigint: true });
      if (!childStat.isDirectory()) throw new UsageError(`${full.toString()} is not a directory.`);
      const subtree = await this.saveVirtualDir(full, childRests, parentNode?.type === 'dir' ? parentNode.subtree : undefined);
      return { ...metaOf(name, childStat, this.withAtime), type: 'dir', subtree };
    }));
    return this.saveTree({ nodes: nodes.filter((n): n is TreeNode => n !== undefined) });
  }

  /** Saves the directory `dir` as the snapshot's root: its tree, and its own metadata beside. */
  private async saveRootDir(dir: string, parentTree: Buffer | undefined): Promise<{ tree: Buffer; meta: RootDirMeta }> {
    const fd = openDirPath(dir, undefined);
    try {
      const st = fstatSync(fd, { bigint: true });
      const tree = await this.saveDir({ path: Buffer.from(dir), fd }, parentTree, st.dev, st.dev);
      if (tree === undefined) throw new UsageError(`Cannot back up ${dir}: it cannot be listed.`);
      if (parentTree === undefined) this.counters.dirs_new++;
      else if (parentTree.equals(tree)) this.counters.dirs_unmodified++;
      else this.counters.dirs_changed++;
      const meta = metaOf(Buffer.alloc(0), st, this.withAtime);
      return { tree, meta: { mode: meta.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtimeNs.toString(), atime: meta.atimeNs.toString() } };
    } finally {
      closeSync(fd);
    }
  }

  private async loadParentNodes(treeId: Buffer | undefined): Promise<Map<string, TreeNode>> {
    const nodes = new Map<string, TreeNode>();
    if (treeId === undefined || !this.repo.index.has(treeId)) return nodes;
    for (const node of (await this.parentTree(treeId)).nodes) nodes.set(nameKey(node.name), node);
    return nodes;
  }

  /**
   * A tree of the parent snapshot: read ahead already (readAheadBelow), or read now; then the
   * trees below it that are not read ahead yet are. A read-ahead that failed is tried again
   * alone, so its error, if any, names this tree.
   */
  private async parentTree(treeId: Buffer): Promise<Tree> {
    const key = treeId.toString('hex');
    const ahead = this.readAhead.get(key);
    this.readAhead.delete(key);
    const tree = (await ahead?.catch(() => undefined)) ?? await this.repo.loadTree(treeId);
    void this.readAheadBelow(tree);
    return tree;
  }

  /**
   * Reads the parent snapshot's trees below `tree` a level at a time, up to READ_AHEAD_TREES of
   * them, in batches (Repository.loadTrees), for the walk to find when it gets there: one read
   * per tree cost a cache lookup or a pack read each, the bulk of a backup in which little changed.
   */
  private async readAheadBelow(tree: Tree): Promise<void> {
    const subtrees = (t: Tree): Buffer[] => t.nodes.flatMap((n) => (
      n.type === 'dir' && this.repo.index.has(n.subtree) && !this.readAhead.has(n.subtree.toString('hex')) ? [n.subtree] : []));
    let level = subtrees(tree);
    let budget = READ_AHEAD_TREES;
    while (level.length > 0 && budget > 0 && this.readAhead.size < READ_AHEAD_HELD) {
      const ids = level.slice(0, budget);
      budget -= ids.length;
      const loading = this.repo.loadTrees(ids);
      for (const [i, id] of ids.entries()) {
        const one = loading.then((trees) => trees[i]);
        one.catch(() => undefined); // Its reader tries again alone; unread, it is no error.
        this.readAhead.set(id.toString('hex'), one);
      }
      const trees = await loading.catch(() => []);
      level = trees.flatMap(subtrees);
    }
  }

  /**
   * Saves the entry `name` of the directory `dir` (read through its handle); undefined when it
   * could not be read or was replaced since it was listed.
   */
  private async saveEntry(
    dir: OpenDir, name: Buffer, st: EntryStat, parent: TreeNode | undefined, rootDev: bigint, scanned?: ScannedDir,
  ): Promise<TreeNode | undefined> {
    throwIfCanceled(this.signal);
    const meta = metaOf(name, st, this.withAtime);
    const type = nodeTypeOf(st);
    if (type === 'file') return this.saveFile(dir, name, meta, st, parent);
    const full = join(dir.path, name);
    switch (type) {
      case 'dir': {
        if (this.oneFileSystem && st.dev !== rootDev) {
          // A mount point: record the directory, not what is mounted on it.
          return { ...meta, type: 'dir', subtree: await this.saveTree({ nodes: [] }) };
        }
        let fd: number;
        try {
          fd = openDirAt(dir.fd, name, st);
        } catch (err) {
          this.reportUnreadable(full, err);
          return undefined;
        }
        let subtree: Buffer | undefined;
        try {
          subtree = await this.saveDir({ path: full, fd }, parent?.type === 'dir' ? parent.subtree : undefined, rootDev, st.dev, scanned);
        } finally {
          closeSync(fd);
        }
        if (subtree === undefined) return undefined;
        if (parent?.type !== 'dir') this.counters.dirs_new++;
        else if (parent.subtree.equals(subtree)) this.counters.dirs_unmodified++;
        else this.counters.dirs_changed++;
        return { ...meta, type: 'dir', subtree };
      }
      case 'symlink':
        try {
          return { ...meta, type: 'symlink', linkTarget: readlinkSync(atPath(dir.fd, name), { encoding: 'buffer' }) };
        } catch (err) {
          this.reportUnreadable(full, err);
          return undefined;
        }
      case 'chardev':
      case 'blockdev':
        return { ...meta, type, rdev: st.rdev };
      case 'fifo':
      case 'socket':
        return { ...meta, type };
    }
  }

  /** Saves a directory's tree; `scanned` is its listing when the parent's scan took it along. */
  private async saveDir(dir: OpenDir, parentTree: Buffer | undefined, rootDev: bigint, dev: bigint, scanned?: ScannedDir): Promise<Buffer | undefined> {
    throwIfCanceled(this.signal);
    const parentNodes = await this.loadParentNodes(parentTree);
    const listing = scanned ?? await this.scanDir(dir, dev, parentTree);
    if (listing === undefined) return undefined;
    // Depth first: subdirectories a few at a time, files handed to the pool as slots free up, so
    // memory follows the depth and width of the tree, not its size.
    const pending: Array<Promise<TreeNode | undefined>> = [];
    const subdirSlots = new Semaphore(SUBDIRS_IN_FLIGHT);
    let nameStart = 0;
    for (const [i, outcome] of listing.outcomes.entries()) {
      throwIfCanceled(this.signal);
      const nameEnd = listing.nameEnds[i] ?? nameStart;
      const name = Buffer.from(listing.names.buffer, listing.names.byteOffset + nameStart, nameEnd - nameStart);
      nameStart = nameEnd;
      if (outcome?.kind === 'stat-failed') {
        this.reportUnreadable(join(dir.path, name), new WorkerTaskError(outcome.failure));
        continue;
      }
      const st = unpackStat(listing.stats, i);
      const parent = parentNodes.get(nameKey(name));
      switch (outcome?.kind) {
        case 'read':
          pending.push(Promise.resolve(this.readFileNode(metaOf(name, st, this.withAtime), outcome.content, outcome.size, parent)));
          continue;
        case 'read-failed':
          if (nodeTypeOf(st) === 'file') this.countFile(Number(st.size));
          this.reportUnreadable(join(dir.path, name), new WorkerTaskError(outcome.failure));
          continue;
        case 'symlink':
          pending.push(Promise.resolve({ ...metaOf(name, st, this.withAtime), type: 'symlink', linkTarget: Buffer.from(outcome.target) }));
          continue;
        case 'saved-dir':
          pending.push(Promise.resolve(this.savedDirNode(metaOf(name, st, this.withAtime), outcome.subtree, outcome.counts)));
          continue;
        case 'dir':
        case undefined:
          break;
      }
      if (nodeTypeOf(st) === 'dir') {
        const scanned = outcome?.kind === 'dir' ? outcome.listing : undefined;
        if (this.dirsInParallel >= DIRS_IN_PARALLEL) {
          // Enough directories (and their handles) open beside this one: this one first.
          const node = this.saveEntry(dir, name, st, parent, rootDev, scanned);
          pending.push(node);
          await node.catch(() => undefined);
          continue;
        }
        // A few subdirectories at a time, so their listings and parent trees overlap in I/O. The
        // limit is per directory: a shared one would deadlock once ancestors held every slot.
        await subdirSlots.acquire();
        this.dirsInParallel++;
        const node = this.saveEntry(dir, name, st, parent, rootDev, scanned).finally(() => {
          this.dirsInParallel--;
          subdirSlots.release();
        });
        node.catch(() => undefined); // Awaited below.
        pending.push(node);
        continue;
      }
      // An unchanged file needs no slot, async call or path: most files, in most backups.
      const unchanged = this.unchangedFile(name, st, parent);
      if (unchanged) {
        pending.push(Promise.resolve(unchanged));
        continue;
      }
      await this.fileSlots.acquire();
      const node = this.saveEntry(dir, name, st, parent, rootDev).finally(() => { this.fileSlots.release(); });
      node.catch(() => undefined); // Awaited below; this only keeps an early failure from counting as unhandled.
      pending.push(node);
    }
    const nodes = (await Promise.all(pending)).filter((n): n is TreeNode => n !== undefined);
    throwIfCanceled(this.signal);
    // An unchanged directory has the parent's tree already: skip encoding and hashing it again.
    if (parentTree !== undefined && this.repo.index.has(parentTree) && parentNodes.size === nodes.length
      && nodes.every((n) => sameNode(n, parentNodes.get(nameKey(n.name))))) return parentTree;
    return this.saveTree({ nodes });
  }

  /**
   * Lists a directory: a new one in a worker (ScanDirTask), which reads its small files too; one
   * the parent snapshot has, here (listDirHere). Undefined when it cannot be listed.
   */
  private async scanDir(dir: OpenDir, dev: bigint, parentTree: Buffer | undefined): Promise<ScannedDir | undefined> {
    if (parentTree !== undefined) {
      try {
        return await listDirHere(dir, this.excludes);
      } catch (err) {
        this.reportUnreadable(dir.path, err);
        return undefined;
      }
    }
    let listing: ScanDirResult;
    try {
      listing = await this.pool.scanDir({
        path: dir.path, dirFd: dir.fd, dev, excludes: this.excludes, readUpTo: SEAL_UNASKED_UP_TO, withAtime: this.withAtime, descendUpTo: DESCEND_UP_TO,
      }, async (question) => {
        switch (question.kind) {
          // Blobs sealed unasked: the scan spools those it may keep.
          case 'claim': return { kind: 'claim', mine: splitIds(question.ids).map((id) => this.writer.claim(id)) };
          case 'store':
            await this.storeUnasked(question.blobs);
            return { kind: 'store' };
          case 'pack': return this.storeSpooled(question.pack);
        }
      });
    } catch (err) {
      if (!(err instanceof WorkerTaskError) || err.errno === SPOOL_FAILED) throw err;
      this.reportUnreadable(dir.path, err);
      return undefined;
    }
    return listing;
  }

  /** Stores and indexes a pack a worker spooled; answered once it is on its way. */
  private async storeSpooled(pack: SpooledPackMessage): Promise<TaskAnswer> {
    await this.writer.addSpooled({ file: pack.file, id: Buffer.from(pack.id), size: pack.size, blobs: pack.blobs.map((blob) => ({ ...blob, id: Buffer.from(blob.id) })) });
    return { kind: 'pack' };
  }

  private countFile(size: number): void {
    this.countFiles(1, size);
  }

  private countFiles(files: number, bytes: number): void {
    this.counters.total_files_processed += files;
    this.counters.total_bytes_processed += bytes;
  }

  /** The node of a new directory whose tree a worker's scan saved (blobs and trees came with the scan). */
  private savedDirNode(meta: NodeMeta, subtree: Uint8Array, counts: SavedCounts): TreeNode {
    this.counters.dirs_new += counts.dirs;
    this.counters.files_new += counts.files;
    this.countFiles(counts.files, counts.bytes);
    this.bytesDone += counts.bytes;
    return { ...meta, type: 'dir', subtree: Buffer.from(subtree) };
  }

  /** The node of a file a directory scan read; its blobs came with the scan. */
  private readFileNode(meta: NodeMeta, content: Uint8Array, size: number, parent: TreeNode | undefined): FileNode {
    this.countFile(size);
    this.bytesDone += size;
    if (parent?.type === 'file') this.counters.files_changed++;
    else this.counters.files_new++;
    return { ...meta, type: 'file', size, content: splitIds(content) };
  }

  /** Stores blobs sealed without asking: the first to arrive is kept, later copies are dropped. */
  private async storeUnasked(blobs: readonly StoredBlobMessage[]): Promise<void> {
    for (const blob of blobs) {
      const id = Buffer.from(blob.id);
      const sealed = Buffer.from(blob.sealed.buffer, blob.sealed.byteOffset, blob.sealed.byteLength);
      if (!this.writer.claim(id)) {
        releaseBuffer(sealed); // Stored already, or on its way from another file.
        continue;
      }
      await this.writer.add(blob.isTree === true ? 'tree' : 'data', { id, sealed, rawLength: blob.rawLength });
    }
  }

  /**
   * The node of a regular file the parent snapshot has as it is (same size, times and inode, and
   * every blob still indexed), counted as unmodified; undefined when it must be read.
   */
  private unchangedFile(name: Buffer, st: EntryStat, parent: TreeNode | undefined): FileNode | undefined {
    const size = Number(st.size);
    if (parent?.type !== 'file' || parent.size !== size || parent.mtimeNs !== st.mtimeNs || parent.ctimeNs !== st.ctimeNs
      || parent.inode !== st.ino || nodeTypeOf(st) !== 'file' || !parent.content.every((id) => this.repo.index.has(id))) return undefined;
    this.countFile(size);
    this.counters.files_unmodified++;
    this.bytesDone += size;
    return { ...metaOf(name, st, this.withAtime), type: 'file', size, content: parent.content };
  }

  /** The file `name` of `dir`: its paths (through the handle, and in messages) are made only if it must be read. */
  private async saveFile(dir: OpenDir, name: Buffer, meta: NodeMeta, st: EntryStat, parent: TreeNode | undefined): Promise<FileNode | undefined> {
    const unchanged = this.unchangedFile(name, st, parent);
    if (unchanged) return unchanged;
    const size = Number(st.size);
    this.countFile(size);
    let content: Promise<FileContent | undefined>;
    const linkKey = `${st.dev}:${st.ino}`;
    const sameInode = st.nlink > 1n ? this.hardlinks.get(linkKey) : undefined;
    if (sameInode) content = sameInode;
    else {
      content = this.chunkFile(join(dir.path, name), { path: atPath(dir.fd, name), dev: st.dev, ino: st.ino, size });
      if (st.nlink > 1n) this.hardlinks.set(linkKey, content);
    }
    const read = await content;
    if (read === undefined) return undefined;
    if (parent?.type === 'file') this.counters.files_changed++;
    else this.counters.files_new++;
    // The size read, which the content holds, even if the file grew or shrank since its lstat.
    return { ...meta, type: 'file', size: read.size, content: read.ids };
  }

  /**
   * Chunks a file in a worker, which spools the chunks it may claim (the first to ask for an ID
   * gets it). A small file is sealed without asking (ChunkFileTask.sealUnasked): its blob comes
   * here and is claimed on arrival.
   */
  private async chunkFile(full: Buffer, file: { path: Buffer; dev: bigint; ino: bigint; size: number }): Promise<FileContent | undefined> {
    const unasked = file.size <= SEAL_UNASKED_UP_TO;
    const answer = async (question: TaskQuestion): Promise<TaskAnswer> => {
      switch (question.kind) {
        case 'claim':
          this.bytesDone += question.bytes;
          return { kind: 'claim', mine: splitIds(question.ids).map((id) => this.writer.claim(id)) };
        case 'store':
          await this.storeUnasked(question.blobs);
          return { kind: 'store' };
        case 'pack': return this.storeSpooled(question.pack);
      }
    };
    let result;
    try {
      result = await this.pool.chunkFile({ ...file, sealUnasked: unasked }, answer);
    } catch (err) {
      // The worker spools what it claimed before it reads on: only a spool failure (fatal) can
      // keep a claimed blob, which other files may refer to, from the repository.
      if (!(err instanceof WorkerTaskError) || err.errno === SPOOL_FAILED) throw err;
      this.reportUnreadable(full, err);
      return undefined;
    }
    if (unasked) this.bytesDone += result.size;
    await this.storeUnasked(result.blobs);
    return { ids: splitIds(result.content), size: result.size };
  }

  private reportUnreadable(full: Buffer, err: unknown): void {
    this.counters.files_unreadable++;
    this.reporter.error?.({ path: full.toString(), message: err instanceof Error ? err.message : String(err) });
  }

  private async saveTree(tree: Tree): Promise<Buffer> {
    const bytes = encodeTree(tree);
    const id = blobId(this.repo.keys.idKey, bytes);
    if (this.writer.claim(id)) await this.writer.add('tree', sealBlob(this.repo.keys, id, bytes, this.compressionLevel));
    return id;
  }
}
