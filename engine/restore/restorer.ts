import { closeSync, constants, promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { blobId } from '../../repository/crypto/master-key.ts';
import { isExcluded } from '../fs/exclude.ts';
import type { Reporter } from '../progress.ts';
import { ArcaError, CorruptObjectError, throwIfCanceled, UsageError } from '../../repository/errors.ts';
import { packName } from '../../repository/object-names.ts';
import { coalesceSpans, rangeOf, type RangeLimits } from '../../repository/pack/read-ranges.ts';
import type { Repository } from '../../repository/repository.ts';
import { makeDirs } from '../../repository/util/make-dirs.ts';
import type { Snapshot } from '../../repository/snapshot/snapshot.ts';
import { isSafeName, type FileNode, type TreeNode } from '../../repository/tree/tree.ts';
import { mapLimit } from '../../repository/repository.ts';
import { ObjectNotFoundError } from '../../repository/storage/storage.ts';
import type { WorkerPool } from '../pool/worker-pool.ts';
import { BLOB_DAMAGED, packIds, type ApplyMetadataTask, type FsBatchResult, type FsBatchTask, type InspectTask, type WriteBlobsResult } from '../pool/messages.ts';
import { createHardlink, createSpecial, createSymlink, type Conflicts, type Overwrite } from '../fs/safe-fs.ts';
import { atPath, openDirPath } from '../fs/handles.ts';
import { removeEntry, TargetDirs } from '../fs/target-dirs.ts';
import { metadataOf } from '../fs/metadata.ts';

export interface RestoreOptions {
  readonly target: string;
  /** Restore only paths (snapshot paths, e.g. "/srv/data/x") matching one of these, with their contents. */
  readonly includes?: readonly string[] | undefined;
  readonly excludes?: readonly string[] | undefined;
  /** Re-read every restored file and check its chunks' hashes. */
  readonly verify?: boolean | undefined;
  /** What happens to existing regular files where the snapshot has files (default DEFAULT_OVERWRITE). */
  readonly overwrite?: Overwrite | undefined;
  /**
   * Replace a directory by a non-directory (or a regular file by a directory), and remove from
   * the restored directories whatever the snapshot does not have. Not with includes or excludes.
   */
  readonly delete?: boolean | undefined;
  /** Cancels the restore: checked between tree batches, windows and ranges (the pool and storage are cancelled by their owner). */
  readonly signal?: AbortSignal | undefined;
  /** Entries planned per window (DEFAULT_PLAN_WINDOW): memory follows it, not the snapshot's size. */
  readonly planWindow?: number | undefined;
  /** Planned windows that may wait for the executor (DEFAULT_WINDOWS_QUEUED). */
  readonly windowsQueued?: number | undefined;
}

/**
 * if-changed: the target ends as with always, but a file that already holds the snapshot's
 * content (verified by hashing its chunks) is not rewritten; in an empty target it costs nothing.
 */
export const DEFAULT_OVERWRITE: Overwrite = 'if-changed';

export interface RestoreSummary {
  files_restored: number;
  dirs_restored: number;
  other_restored: number;
  bytes_restored: number;
  errors: number;
  files_verified: number;
  /** Existing files found to hold the snapshot's content already (--overwrite if-changed). */
  files_unchanged: number;
  /** Existing entries left as they were (--overwrite never or if-newer). */
  entries_left_alone: number;
  /** Entries the snapshot does not have, removed (--delete). */
  entries_deleted: number;
}

/** A directory of the snapshot while something in or below it is not restored yet. */
interface DirState {
  readonly parent: DirState | undefined;
  /** Its own entry (set once, right after it is made); undefined for the target itself. */
  entry: PlannedNode | undefined;
  /** Chosen by --include itself or through a parent. */
  readonly selected: boolean;
  /** Handed to the executor (with --include, only once something in it is chosen). */
  emitted: boolean;
  /** Existed before the restore: what is in it is inspected first, and --delete looks at it. */
  existed: boolean;
  /** Could not be made (a conflict): nothing below it is tried, nor is its metadata set. */
  skipped: boolean;
  /**
   * What must be done before its metadata is set: its tree planned, its own entry made, each
   * non-directory planned in it restored, each directory planned in it finished (release()).
   */
  pending: number;
  /** With --delete: the names (latin1) its tree has, so that the rest can be removed. */
  readonly names: Set<string> | undefined;
}

interface PlannedNode {
  readonly node: TreeNode;
  /** Path below the target (names joined by "/"), from validated names only. */
  readonly local: Buffer;
  /** Path inside the snapshot, for --include/--exclude and messages. */
  readonly snapshotPath: string;
  readonly depth: number;
  /** The directory it is in. */
  readonly parent: DirState;
  /** For a directory: its own state. */
  readonly self: DirState | undefined;
}

/** Where one blob's plaintext goes. */
interface BlobTarget {
  readonly file: FileState;
  readonly offset: number;
}

/** A blob to fetch from a pack, and every place its plaintext goes. */
interface NeededBlob {
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
  readonly id: Buffer;
  readonly targets: BlobTarget[];
}

/** A regular file with content to write. */
interface ContentFile {
  readonly entry: PlannedNode;
  readonly node: FileNode;
  readonly create: boolean;
}

interface FileState {
  readonly entry: PlannedNode;
  /** Not created yet: its one blob's write creates it (see WriteBlobsTask). */
  readonly create: boolean;
  /** Set once a write failed: the file is reported once and gets no more writes, nor metadata. */
  failed: boolean;
}

/** What one window of planned entries found while it was restored. */
interface WindowState {
  /** Entries that failed (their content or their creation): they get no metadata. */
  readonly failed: Set<PlannedNode>;
  /** Existing files that hold the snapshot's content already (Verdict unchanged): only their metadata is set. */
  readonly unchanged: Set<PlannedNode>;
}

/**
 * Entries planned into one window: the restore's unit of work. Files of a window are batched
 * together per pack (coalesced range reads), so a window should hold many files; what the
 * restore holds in memory is about (WINDOWS_QUEUED + 2) windows, whatever the snapshot's size.
 */
export const DEFAULT_PLAN_WINDOW = 4096;
/** Planned windows waiting for the executor: the planner stops (back-pressure) when this many wait. */
export const DEFAULT_WINDOWS_QUEUED = 2;

const PACK_CONCURRENCY = 4;
/** Trees read and decoded together while planning, at most. */
const TREES_PER_BATCH = 256;
/**
 * Directories waiting on the planner's stack, about at most: a batch of trees is cut short
 * when the subdirectories they are expected to add (by the recent average) would pass this.
 * Without it, 256 sibling trees of 1,000 subdirectories each put 256,000 on the stack.
 */
const STACK_BUDGET = 16_384;
const SLASH = Buffer.from('/');
const below = (dir: Buffer, name: Buffer): Buffer => (dir.length === 0 ? name : Buffer.concat([dir, SLASH, name]));
/** File-system calls (links, special files) in flight at once: they wait on the disk, not the CPU. */
const FS_OPS_IN_FLIGHT = 32;
/** Files created, or nodes given their metadata, per worker task. */
const FS_BATCH = 128;
/**
 * Blobs of a pack up to 1 MiB apart are fetched in one range read of at most 4 MiB (a larger
 * blob is read alone), which bounds memory at PACK_CONCURRENCY × 4 MiB plus plaintext. 8 MiB
 * cost 30 MiB more peak RSS and was no faster.
 */
const CONTENT_READ_LIMITS: RangeLimits = { maxGap: 1 << 20, maxRange: 4 << 20 };

/** Directories grouped by depth, shallowest first (parents before children). */
function byDepth(nodes: readonly PlannedNode[]): PlannedNode[][] {
  const levels = new Map<number, PlannedNode[]>();
  for (const node of nodes) {
    const level = levels.get(node.depth);
    if (level) level.push(node);
    else levels.set(node.depth, [node]);
  }
  return [...levels.keys()].sort((a, b) => a - b).map((depth) => levels.get(depth) ?? []);
}

/**
 * Windows handed from the planner to the executor, at most `capacity` waiting: the planner
 * waits for room, the executor for a window. A failure on either side ends both.
 */
class WindowQueue {
  private readonly items: PlannedNode[][] = [];
  private readonly capacity: number;
  private closed = false;
  private failure: { err: unknown } | undefined;
  private changed = Promise.withResolvers<undefined>();

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
  }

  async put(window: PlannedNode[]): Promise<void> {
    while (this.items.length >= this.capacity && !this.failure) await this.changed.promise;
    if (this.failure) throw this.failure.err as Error;
    this.items.push(window);
    this.signal();
  }

  /** The next window, or undefined once the planner is done and all were taken. */
  async take(): Promise<PlannedNode[] | undefined> {
    while (this.items.length === 0 && !this.closed && !this.failure) await this.changed.promise;
    if (this.failure) throw this.failure.err as Error;
    const window = this.items.shift();
    this.signal();
    return window;
  }

  close(): void {
    this.closed = true;
    this.signal();
  }

  fail(err: unknown): void {
    this.failure ??= { err };
    this.signal();
  }

  /** Throws the first failure of either side. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure.err as Error;
  }

  private signal(): void {
    this.changed.resolve(undefined);
    this.changed = Promise.withResolvers<undefined>();
  }
}

export class RestoreError extends ArcaError {
  constructor(message: string) {
    super('ARCA_ERR_RESTORE', message);
  }
}

/**
 * Restores a snapshot into a target directory, streaming: a planner walks the snapshot's trees
 * (depth first, a batch of trees at a time) and hands what it finds to an executor in windows
 * of `planWindow` entries through a queue of `windowsQueued`. The executor restores a window
 * at a time: makes its directories, creates its files, links and special files, fetches its
 * files' blobs per pack in coalesced range reads decoded and written by the worker pool, sets
 * their metadata; a directory's metadata is set once everything in it is done. Memory is
 * bounded by the window, the queue, and the directories open on the walk (depth × fan-out),
 * not by the number of files.
 */
export class Restorer {
  private readonly repo: Repository;
  private readonly pool: WorkerPool;
  private readonly reporter: Reporter;
  readonly summary: RestoreSummary = {
    files_restored: 0, dirs_restored: 0, other_restored: 0, bytes_restored: 0, errors: 0, files_verified: 0,
    files_unchanged: 0, entries_left_alone: 0, entries_deleted: 0,
  };
  private started = 0;
  private filesTotal: number | undefined;
  private bytesTotal: number | undefined;
  /** The target, open for the restore: everything below it is reached through it (TargetDirs). */
  private rootFd = -1;
  private rules: Conflicts = { overwrite: DEFAULT_OVERWRITE, delete: false };
  private signal: AbortSignal | undefined;
  private verifyContent = false;
  /** The first path restored of each inode with several links (the only state kept per file for the whole restore). */
  private readonly firstPathOfInode = new Map<string, Buffer>();
  /** Directories all of whose contents are done, in the order they finished (children before parents). */
  private finished: DirState[] = [];
  /** Entries planned and not yet restored, and the most there were at once. */
  private held = 0;
  private mostHeld = 0;

  constructor(repo: Repository, pool: WorkerPool, reporter: Reporter = {}) {
    this.repo = repo;
    this.pool = pool;
    this.reporter = reporter;
  }

  /** The most entries the restore held planned at once: bounded by the window options, not by the snapshot. */
  get peakEntriesHeld(): number {
    return this.mostHeld;
  }

  async run(snapshot: Snapshot, options: RestoreOptions): Promise<RestoreSummary> {
    this.started = performance.now();
    this.signal = options.signal;
    this.verifyContent = options.verify === true;
    this.rules = { overwrite: options.overwrite ?? DEFAULT_OVERWRITE, delete: options.delete ?? false };
    const filtered = (options.includes ?? []).length > 0 || (options.excludes ?? []).length > 0;
    if (this.rules.delete && filtered) {
      throw new UsageError('--delete restores a whole snapshot: it cannot be combined with --include or --exclude.');
    }
    // The plan is never whole in memory; a whole snapshot's totals are those its backup counted,
    // a filtered restore's are known once the planner is through.
    if (!filtered && snapshot.summary) {
      this.filesTotal = snapshot.summary.total_files_processed;
      this.bytesTotal = snapshot.summary.total_bytes_processed;
    }
    const target = path.resolve(options.target);
    await makeDirs(target);
    if (!(await fsp.lstat(target)).isDirectory()) throw new RestoreError(`The restore target ${options.target} is not a directory.`);
    this.rootFd = openDirPath(target, undefined);
    try {
      const root: DirState = {
        parent: undefined, entry: undefined, selected: false, emitted: true, skipped: false,
        existed: readdirSync(atPath(this.rootFd)).length > 0, pending: 1, names: this.rules.delete ? new Set() : undefined,
      };
      const queue = new WindowQueue(options.windowsQueued ?? DEFAULT_WINDOWS_QUEUED);
      const timer = setInterval(() => { this.reportProgress(); }, 1000);
      try {
        // Each side waits for the other to stop (the queue fails both), then the first failure is thrown.
        await Promise.allSettled([
          this.plan(root, Buffer.from(snapshot.tree, 'hex'), options, queue).then(() => { queue.close(); }),
          this.execute(queue),
        ].map((side) => side.catch((err: unknown) => { queue.fail(err); })));
        queue.throwIfFailed();
      } finally {
        clearInterval(timer);
      }
      this.reportProgress();
      return this.summary;
    } finally {
      closeSync(this.rootFd);
    }
  }

  private reportProgress(): void {
    this.reporter.progress?.({
      filesDone: this.summary.files_restored,
      bytesDone: this.summary.bytes_restored,
      filesTotal: this.filesTotal,
      bytesTotal: this.bytesTotal,
      elapsedSeconds: (performance.now() - this.started) / 1000,
    });
  }

  /** Reports one item that failed; once cancelled, nothing is an item's failure (run() ends as cancelled). */
  private fail(where: string, err: unknown): void {
    throwIfCanceled(this.signal);
    this.summary.errors++;
    this.reporter.error?.({ path: where, message: err instanceof Error ? err.message : String(err) });
  }

  /**
   * Walks the snapshot's trees depth first, up to TREES_PER_BATCH trees read at a time from the
   * top of the stack (fewer when their subdirectories would overfill it, STACK_BUDGET) (Repository.loadTrees: a few range reads for hundreds of trees), and plans
   * every entry to restore into windows for the executor, parents before children. With
   * --include, a directory is restored when chosen itself or when something inside it is: it
   * is planned when the first such thing is.
   */
  private async plan(root: DirState, rootTree: Buffer, options: RestoreOptions, queue: WindowQueue): Promise<void> {
    const includes = options.includes ?? [];
    const excludes = options.excludes ?? [];
    const windowSize = Math.max(1, options.planWindow ?? DEFAULT_PLAN_WINDOW);
    let window: PlannedNode[] = [];
    let files = 0;
    let bytes = 0;
    const emit = async (entry: PlannedNode): Promise<void> => {
      if (entry.self) {
        entry.self.emitted = true;
        entry.self.pending++;
      } else {
        entry.parent.pending++;
      }
      if (entry.node.type === 'file') {
        files++;
        bytes += entry.node.size;
      }
      window.push(entry);
      this.held++;
      this.mostHeld = Math.max(this.mostHeld, this.held);
      if (window.length >= windowSize) {
        const full = window;
        window = [];
        await queue.put(full);
      }
    };
    const emitWithParents = async (entry: PlannedNode): Promise<void> => {
      const waiting: PlannedNode[] = [];
      for (let dir: DirState | undefined = entry.parent; dir && !dir.emitted; dir = dir.parent) if (dir.entry) waiting.push(dir.entry);
      for (const parent of waiting.reverse()) await emit(parent);
      await emit(entry);
    };
    const stack: Array<{ dir: DirState; treeId: Buffer }> = [{ dir: root, treeId: rootTree }];
    /** Subdirectories per tree in recent batches (a moving average). */
    let fanOut = 0;
    while (stack.length > 0) {
      throwIfCanceled(this.signal);
      const room = Math.floor((STACK_BUDGET - stack.length) / Math.max(1, fanOut));
      const batch = stack.splice(stack.length - Math.min(stack.length, TREES_PER_BATCH, Math.max(1, room)));
      const trees = await this.repo.loadTrees(batch.map(({ treeId }) => treeId));
      const subdirs: Array<{ dir: DirState; treeId: Buffer }> = [];
      for (const [i, { dir }] of batch.entries()) {
        const parentPath = dir.entry?.snapshotPath ?? '';
        const parentLocal = dir.entry?.local ?? Buffer.alloc(0);
        const depth = (dir.entry?.depth ?? 0) + 1;
        for (const node of trees[i]?.nodes ?? []) {
          // decodeTree already rejects these; checked again because a path escape must never happen.
          if (!isSafeName(node.name)) throw new RestoreError(`The snapshot names an unsafe path component ${JSON.stringify(node.name.toString())}.`);
          const snapshotPath = `${parentPath}/${node.name.toString()}`;
          const pathBytes = Buffer.from(snapshotPath);
          if (isExcluded(pathBytes, excludes)) continue;
          dir.names?.add(node.name.toString('latin1'));
          const selected = dir.selected || includes.length === 0 || isExcluded(pathBytes, includes);
          const local = below(parentLocal, node.name);
          if (node.type === 'dir') {
            const self: DirState = {
              parent: dir, entry: undefined, selected, emitted: false, existed: false, skipped: false,
              // Its tree to plan; one more for its entry once emitted.
              pending: 1, names: this.rules.delete ? new Set() : undefined,
            };
            const entry: PlannedNode = { node, local, snapshotPath, depth, parent: dir, self };
            self.entry = entry;
            dir.pending++;
            subdirs.push({ dir: self, treeId: node.subtree });
            if (selected) await emitWithParents(entry);
          } else if (selected) {
            await emitWithParents({ node, local, snapshotPath, depth, parent: dir, self: undefined });
          }
        }
      }
      fanOut = (fanOut + subdirs.length / batch.length) / 2;
      // Children in the order listed on top of the stack: the first is walked next (a loop: a
      // directory can have more subdirectories than a call takes arguments).
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as { dir: DirState; treeId: Buffer });
      for (const { dir } of batch) this.release(dir);
    }
    if (window.length > 0) await queue.put(window);
    this.filesTotal = files;
    this.bytesTotal = bytes;
  }

  /** One thing `dir` waited for is done; a directory with nothing left to wait for is finished, and so may its parent be. */
  private release(dir: DirState): void {
    if (--dir.pending > 0) return;
    this.finished.push(dir);
    if (dir.parent) this.release(dir.parent);
  }

  /** Restores the planned windows one after the other, then finishes the last directories. */
  private async execute(queue: WindowQueue): Promise<void> {
    for (let window = await queue.take(); window !== undefined; window = await queue.take()) {
      throwIfCanceled(this.signal);
      await this.restoreWindow(window);
      this.held -= window.length;
    }
    await this.finishDirs();
  }

  private async restoreWindow(window: readonly PlannedNode[]): Promise<void> {
    const state: WindowState = { failed: new Set(), unchanged: new Set() };
    for (const level of byDepth(window.filter((entry) => entry.node.type === 'dir'))) await this.makeDirs(level.filter((entry) => !this.isSkipped(entry)));
    throwIfCanceled(this.signal);
    const plan = await this.inspectExisting(window.filter((entry) => entry.node.type !== 'dir' && !this.isSkipped(entry)), state);
    throwIfCanceled(this.signal);
    const files = await this.createNodes(plan, state);
    throwIfCanceled(this.signal);
    await this.writeContent(files, state);
    throwIfCanceled(this.signal);
    if (this.verifyContent) await this.verify(plan);
    throwIfCanceled(this.signal);
    await this.inBatches(plan.filter((entry) => entry.node.type !== 'socket' && !state.failed.has(entry)), (batch) => this.metadataTask(batch));
    for (const entry of window) this.release(entry.self ?? entry.parent);
    await this.finishDirs();
  }

  private metadataTask(batch: readonly PlannedNode[]): ApplyMetadataTask {
    return { kind: 'apply-metadata', rootFd: this.rootFd, nodes: batch.map(({ node, local }) => metadataOf(local, node)) };
  }

  /**
   * Directories whose contents are all done: with --delete, what the snapshot does not have is
   * removed from those that existed; then their metadata is set, children before parents (a
   * batch at a time, in order: a parent's mode could bar the way to its children).
   */
  private async finishDirs(): Promise<void> {
    const dirs = this.finished;
    this.finished = [];
    if (this.rules.delete) this.deleteExtras(dirs.filter((dir) => dir.existed && !dir.skipped));
    const settable = dirs.flatMap((dir) => (dir.entry && dir.emitted && !dir.skipped ? [dir.entry] : []));
    for (let i = 0; i < settable.length; i += FS_BATCH) await this.inBatches(settable.slice(i, i + FS_BATCH), (batch) => this.metadataTask(batch));
  }

  /**
   * Creates every file, link and special file of a window; returns files that need content.
   * Files first, then everything else at once, then hard links to the files they share an
   * inode with. A file of one blob (most small files) is left for the write of that blob to create.
   */
  private async createNodes(plan: readonly PlannedNode[], state: WindowState): Promise<ContentFile[]> {
    const withContent: ContentFile[] = [];
    const links: Array<{ first: Buffer; entry: PlannedNode }> = [];
    const others: PlannedNode[] = [];
    const files: PlannedNode[] = [];
    for (const entry of plan) {
      const { node } = entry;
      if (state.unchanged.has(entry)) continue;
      if (node.type === 'file' && node.links > 1) {
        const inodeKey = `${node.deviceId}:${node.inode}`;
        const first = this.firstPathOfInode.get(inodeKey);
        if (first) links.push({ first, entry });
        else {
          this.firstPathOfInode.set(inodeKey, entry.local);
          files.push(entry);
        }
      } else if (node.type === 'file' && node.content.length === 1) withContent.push({ entry, node, create: true });
      else if (node.type === 'file') files.push(entry);
      else others.push(entry);
    }
    await this.inBatches(files, (batch) => ({ kind: 'create-files', rootFd: this.rootFd, files: batch.map(({ node, local }) => ({ path: local, size: node.type === 'file' ? node.size : 0 })) }), (entry) => {
      const { node } = entry;
      if (node.type === 'file' && node.content.length > 0) withContent.push({ entry, node, create: false });
      this.summary.files_restored++;
    }, (entry) => { state.failed.add(entry); });
    const here = new TargetDirs(this.rootFd);
    await mapLimit(others, FS_OPS_IN_FLIGHT, (entry) => this.attempt(entry, state, async () => {
      const { node, local } = entry;
      switch (node.type) {
        case 'symlink':
          createSymlink(here, local, node.linkTarget);
          break;
        case 'fifo':
        case 'chardev':
        case 'blockdev': {
          // Its own handles: they stay open while the child process makes the node.
          const dirsOfChild = new TargetDirs(this.rootFd, 4);
          try {
            await createSpecial(dirsOfChild, local, node.type, 'rdev' in node ? node.rdev : 0n);
          } finally {
            dirsOfChild.close();
          }
          break;
        }
        case 'socket':
          return; // A socket belongs to a running process; there is nothing to restore.
        case 'file':
        case 'dir':
          return; // Made above.
      }
      this.summary.other_restored++;
    }));
    await mapLimit(links, FS_OPS_IN_FLIGHT, ({ first, entry }) => this.attempt(entry, state, () => {
      createHardlink(here, first, entry.local);
      this.summary.files_restored++;
      return Promise.resolve();
    }));
    here.close();
    return withContent;
  }

  /** Whether `entry` lies in a directory that could not be made; if it is a directory itself, so is what lies in it. */
  private isSkipped(entry: PlannedNode): boolean {
    if (!entry.parent.skipped) return false;
    if (entry.self) entry.self.skipped = true;
    return true;
  }

  /** Makes directories whose parents exist, noting which existed before (their entries are inspected) and which could not be made. */
  private async makeDirs(entries: readonly PlannedNode[]): Promise<void> {
    await this.inBatches(entries, (batch) => ({ kind: 'make-dirs', rootFd: this.rootFd, rules: this.rules, paths: batch.map(({ local }) => local) }), (entry, outcome) => {
      if (outcome === 'existed' && entry.self) entry.self.existed = true;
      this.summary.dirs_restored++;
    }, (entry) => {
      if (entry.self) entry.self.skipped = true;
    });
  }

  /**
   * Decides, in the workers, what happens to whatever already stands where the plan puts a
   * non-directory, in directories that existed before (safe-fs.ts inspectExisting); returns the
   * plan without the entries left alone or in conflict. In an empty target there is nothing to do.
   */
  private async inspectExisting(plan: PlannedNode[], state: WindowState): Promise<PlannedNode[]> {
    const candidates = plan.filter((entry) => entry.parent.existed);
    if (candidates.length === 0) return plan;
    const dropped = new Set<PlannedNode>();
    const withContent = this.rules.overwrite === 'if-changed';
    const request = (batch: readonly PlannedNode[]): InspectTask => ({
      kind: 'inspect', rootFd: this.rootFd, rules: this.rules,
      nodes: batch.map(({ node, local }) => {
        const content = withContent && node.type === 'file' ? node.content : [];
        return {
          path: local, type: node.type, size: node.type === 'file' ? node.size : 0, mtimeNs: node.mtimeNs,
          content: packIds(content), lengths: Uint32Array.from(content, (id) => this.repo.locate(id)?.rawLength ?? 0),
        };
      }),
    });
    await this.inBatches(candidates, request, (entry, verdict) => {
      if (verdict === 'leave') {
        dropped.add(entry);
        this.summary.entries_left_alone++;
      } else if (verdict === 'unchanged') {
        state.unchanged.add(entry);
        this.summary.files_unchanged++;
      }
    }, (entry) => { dropped.add(entry); });
    return dropped.size === 0 ? plan : plan.filter((entry) => !dropped.has(entry));
  }

  /**
   * --delete: removes from each finished directory that existed before whatever the snapshot
   * does not have there, through the target's handles (a directory with all it holds).
   */
  private deleteExtras(existing: readonly DirState[]): void {
    if (existing.length === 0) return;
    const dirs = new TargetDirs(this.rootFd);
    try {
      for (const dir of existing) {
        const names = dir.names ?? new Set<string>();
        try {
          const fd = dirs.dir(dir.entry?.local ?? Buffer.alloc(0));
          for (const name of readdirSync(atPath(fd), { encoding: 'buffer' })) {
            if (names.has(name.toString('latin1'))) continue;
            removeEntry(fd, name);
            this.summary.entries_deleted++;
          }
        } catch (err) {
          this.fail(dir.entry?.snapshotPath ?? '/', err);
        }
      }
    } finally {
      dirs.close();
    }
  }

  /**
   * Runs file-system steps for `entries` in worker batches of FS_BATCH, all batches at once (the
   * pool queues them); `done` is called for each entry that succeeded, failures are reported.
   */
  private async inBatches(
    entries: readonly PlannedNode[],
    request: (batch: readonly PlannedNode[]) => FsBatchTask,
    done: (entry: PlannedNode, outcome: FsBatchResult['outcomes'][number]) => void = () => undefined,
    failed: (entry: PlannedNode) => void = () => undefined,
  ): Promise<void> {
    const batches: PlannedNode[][] = [];
    for (let i = 0; i < entries.length; i += FS_BATCH) batches.push(entries.slice(i, i + FS_BATCH));
    await Promise.all(batches.map(async (batch) => {
      let failures: FsBatchResult['failures'];
      let outcomes: FsBatchResult['outcomes'];
      try {
        ({ failures, outcomes } = await this.pool.fsBatch(request(batch)));
      } catch (err) {
        for (const entry of batch) {
          failed(entry);
          this.fail(entry.snapshotPath, err);
        }
        return;
      }
      batch.forEach((entry, i) => {
        const failure = failures[i];
        if (failure === undefined) done(entry, outcomes[i]);
        else {
          failed(entry);
          this.fail(entry.snapshotPath, new RestoreError(failure.message));
        }
      });
    }));
  }

  /** Runs one step for one entry; a failure is reported, the entry gets no metadata, and the restore goes on. */
  private async attempt(entry: PlannedNode, state: WindowState, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      state.failed.add(entry);
      this.fail(entry.snapshotPath, err);
    }
  }

  /** Writes the content of a window's files: their blobs grouped per pack, fetched in coalesced ranges. */
  private async writeContent(files: readonly ContentFile[], window: WindowState): Promise<void> {
    const byPack = new Map<string, Map<string, NeededBlob>>();
    for (const { entry, node, create } of files) {
      const state: FileState = { entry, create, failed: false };
      let offset = 0;
      for (const id of node.content) {
        const loc = this.repo.locate(id);
        if (!loc) throw new RestoreError(`Blob ${id.toString('hex')} of ${entry.snapshotPath} is in no index; run "arca check".`);
        const packHex = loc.packId.toString('hex');
        let blobs = byPack.get(packHex);
        if (!blobs) byPack.set(packHex, (blobs = new Map<string, NeededBlob>()));
        const key = id.toString('hex');
        let blob = blobs.get(key);
        if (!blob) blobs.set(key, (blob = { offset: loc.offset, length: loc.length, rawLength: loc.rawLength, id, targets: [] }));
        blob.targets.push({ file: state, offset });
        offset += loc.rawLength;
      }
    }
    await mapLimit([...byPack], PACK_CONCURRENCY, async ([packHex, blobs]) => {
      for (const group of coalesceSpans(blobs.values(), CONTENT_READ_LIMITS)) await this.restoreRange(packHex, group, window);
    });
  }

  /**
   * Fetches one range of a pack and has a worker decode its blobs and write them into the files.
   * If the range fails as a whole (a cut pack), each blob is tried alone, so one damaged blob
   * neither takes its intact neighbours down nor goes unnamed.
   */
  private async restoreRange(packHex: string, blobs: readonly NeededBlob[], window: WindowState): Promise<void> {
    const first = blobs[0];
    if (!first) return;
    throwIfCanceled(this.signal);
    const range = rangeOf(blobs);
    const start = range.offset;
    const name = packName(packHex);
    const targets = blobs.flatMap((blob, i) => blob.targets.filter((t) => !t.file.failed).map((t) => ({ blob: i, target: t })));
    let failures: WriteBlobsResult['failures'];
    try {
      const data = await this.repo.storage.get(name, range);
      const result = await this.pool.writeBlobs(
        this.rootFd,
        data,
        blobs.map((b) => ({ offset: b.offset - start, length: b.length, id: b.id, rawLength: b.rawLength })),
        targets.map(({ blob, target }) => ({ blob, path: target.file.entry.local, offset: target.offset, create: target.file.create })),
      );
      failures = result.failures;
      this.summary.bytes_restored += result.bytes;
    } catch (err) {
      if (blobs.length > 1 && !(err instanceof ObjectNotFoundError)) {
        for (const blob of blobs) await this.restoreRange(packHex, [blob], window);
        return;
      }
      for (const blob of blobs) for (const t of blob.targets) this.finishWrite(t.file, window, err);
      return;
    }
    for (const [i, { blob, target }] of targets.entries()) {
      const failure = failures[i];
      const damaged = failure?.code === BLOB_DAMAGED;
      // A blob that does not decode is named with its pack; a file-system error speaks for itself.
      const err = failure === undefined ? undefined
        : damaged ? new CorruptObjectError(name, `blob ${(blobs[blob] ?? first).id.toString('hex')}: ${failure.message}`)
          : new RestoreError(failure.message);
      this.finishWrite(target.file, window, err);
    }
  }

  private finishWrite(file: FileState, window: WindowState, err: unknown): void {
    if (err === undefined) {
      if (file.create) this.summary.files_restored++;
    } else if (!file.failed) {
      file.failed = true;
      window.failed.add(file.entry);
      this.fail(file.entry.snapshotPath, err);
    }
  }

  private async verify(plan: readonly PlannedNode[]): Promise<void> {
    const dirs = new TargetDirs(this.rootFd);
    try {
      for (const entry of plan) await this.verifyOne(dirs, entry);
    } finally {
      dirs.close();
    }
  }

  private async verifyOne(dirs: TargetDirs, { node, local, snapshotPath }: PlannedNode): Promise<void> {
    if (node.type !== 'file' || node.content.length === 0) return;
    throwIfCanceled(this.signal);
    try {
      // One file at a time: the handle `at` goes through stays open until it is opened.
      const handle = await fsp.open(dirs.entry(local).at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        let offset = 0;
        for (const id of node.content) {
          const length = this.repo.locate(id)?.rawLength ?? 0;
          const buf = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buf, 0, length, offset);
          if (bytesRead !== length || !blobId(this.repo.keys.idKey, buf).equals(id)) throw new RestoreError(`content at offset ${offset} does not match the snapshot`);
          offset += length;
        }
      } finally {
        await handle.close();
      }
      this.summary.files_verified++;
    } catch (err) {
      this.fail(snapshotPath, err);
    }
  }
}
