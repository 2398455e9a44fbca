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
  /** Cancels the restore: checked between levels, batches and ranges (the pool and storage are cancelled by their owner). */
  readonly signal?: AbortSignal | undefined;
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

interface PlannedNode {
  readonly node: TreeNode;
  /** Path below the target (names joined by "/"), from validated names only. */
  readonly local: Buffer;
  /** Path inside the snapshot, for --include/--exclude and messages. */
  readonly snapshotPath: string;
  readonly depth: number;
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
  readonly node: FileNode;
  readonly local: Buffer;
  readonly snapshotPath: string;
  readonly create: boolean;
}

/** A directory whose tree is still to be read while planning. */
interface DirToPlan {
  readonly treeId: Buffer;
  readonly local: Buffer;
  readonly snapPath: string;
  readonly depth: number;
  /** Chosen by --include itself or through a parent. */
  readonly selected: boolean;
  /** Its own entry among the nodes found, -1 for the root. */
  readonly index: number;
}

interface FileState {
  readonly local: Buffer;
  /** Path inside the snapshot, for messages. */
  readonly snapshotPath: string;
  /** Not created yet: its one blob's write creates it (see WriteBlobsTask). */
  readonly create: boolean;
  /** Set once a write failed: the file is reported once and gets no more writes. */
  failed: boolean;
}

const PACK_CONCURRENCY = 4;
/** Trees read and decoded together while planning, and such batches in flight. */
const TREES_PER_BATCH = 256;
const TREE_BATCHES_IN_FLIGHT = 2;
const SLASH = Buffer.from('/');
const below = (dir: Buffer, name: Buffer): Buffer => (dir.length === 0 ? name : Buffer.concat([dir, SLASH, name]));
/** The key of the directory holding `local` ('' for the target). */
const parentKey = (local: Buffer): string => local.subarray(0, Math.max(0, local.lastIndexOf(0x2f))).toString('latin1');
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

/** Nodes grouped by depth, the groups in the order asked for. */
function byDepth(nodes: readonly PlannedNode[], order: 'shallowest first' | 'deepest first'): PlannedNode[][] {
  const levels = new Map<number, PlannedNode[]>();
  for (const node of nodes) {
    const level = levels.get(node.depth);
    if (level) level.push(node);
    else levels.set(node.depth, [node]);
  }
  return [...levels.keys()].sort((a, b) => (order === 'shallowest first' ? a - b : b - a)).map((depth) => levels.get(depth) ?? []);
}

export class RestoreError extends ArcaError {
  constructor(message: string) {
    super('ARCA_ERR_RESTORE', message);
  }
}

/**
 * Restores a snapshot into a target directory: plan from the trees, create directories and
 * files, fetch each pack's needed blobs in parallel range reads, decode them in the worker pool,
 * write them at their offsets, then apply metadata (directories last, deepest first).
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
  /** Local paths (latin1) of files whose content failed: they get no metadata. */
  private readonly failedFiles = new Set<string>();
  private filesTotal: number | undefined;
  /** The target, open for the restore: everything below it is reached through it (TargetDirs). */
  private rootFd = -1;
  private rules: Conflicts = { overwrite: DEFAULT_OVERWRITE, delete: false };
  /** Directories (keys: local in latin1, '' the target) that existed before: what is in them is inspected first. */
  private readonly existedDirs = new Set<string>();
  /** Directories that could not be made (a conflict): nothing below them is tried. */
  private readonly skippedDirs = new Set<string>();
  /** Existing files that hold the snapshot's content already (Verdict unchanged): only their metadata is set. */
  private readonly unchanged = new Set<string>();
  private bytesTotal: number | undefined;
  private signal: AbortSignal | undefined;

  constructor(repo: Repository, pool: WorkerPool, reporter: Reporter = {}) {
    this.repo = repo;
    this.pool = pool;
    this.reporter = reporter;
  }

  async run(snapshot: Snapshot, options: RestoreOptions): Promise<RestoreSummary> {
    this.started = performance.now();
    this.signal = options.signal;
    this.rules = { overwrite: options.overwrite ?? DEFAULT_OVERWRITE, delete: options.delete ?? false };
    if (this.rules.delete && ((options.includes ?? []).length > 0 || (options.excludes ?? []).length > 0)) {
      throw new UsageError('--delete restores a whole snapshot: it cannot be combined with --include or --exclude.');
    }
    const target = path.resolve(options.target);
    await makeDirs(target);
    if (!(await fsp.lstat(target)).isDirectory()) throw new RestoreError(`The restore target ${options.target} is not a directory.`);
    this.rootFd = openDirPath(target, undefined);
    try {
      if (readdirSync(atPath(this.rootFd)).length > 0) this.existedDirs.add('');
      return await this.restoreInto(snapshot, options);
    } finally {
      closeSync(this.rootFd);
    }
  }

  private async restoreInto(snapshot: Snapshot, options: RestoreOptions): Promise<RestoreSummary> {
    // Without --include every directory is restored, so each is made as soon as its tree is
    // read, by the workers, while the main thread goes on reading trees.
    const madeEarly = (options.includes ?? []).length === 0;
    const planned = await this.planTree(Buffer.from(snapshot.tree, 'hex'), options, madeEarly);
    const plan = await this.inspectExisting(planned.filter((entry) => !this.isSkipped(entry)));
    throwIfCanceled(this.signal);
    const files = await this.createNodes(plan, { dirsMade: madeEarly });
    throwIfCanceled(this.signal);
    this.filesTotal = plan.filter((p) => p.node.type === 'file').length;
    this.bytesTotal = plan.reduce((sum, p) => sum + (p.node.type === 'file' ? p.node.size : 0), 0);
    const timer = setInterval(() => { this.reportProgress(); }, 1000);
    try {
      await this.writeContent(files);
    } finally {
      clearInterval(timer);
    }
    throwIfCanceled(this.signal);
    if (options.verify === true) await this.verify(plan);
    throwIfCanceled(this.signal);
    if (this.rules.delete) this.deleteExtras(plan);
    await this.applyAllMetadata(plan);
    this.reportProgress();
    return this.summary;
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
   * The nodes under `rootTree` to restore, parents before children: a level of the tree at a
   * time, its trees read in batches (Repository.loadTrees: a few range reads for hundreds of
   * trees). With `makeDirs`, each level's directories are made by the workers, after the level
   * above, while the main thread reads the next level's trees; without, createNodes makes them.
   */
  private async planTree(rootTree: Buffer, options: RestoreOptions, makeDirs: boolean): Promise<PlannedNode[]> {
    const includes = options.includes ?? [];
    const excludes = options.excludes ?? [];
    /** Every candidate node; `keep` is settled once all levels are read. */
    const found: Array<{ entry: PlannedNode; parent: number; keep: boolean }> = [];
    let level: DirToPlan[] = [{ treeId: rootTree, local: Buffer.alloc(0), snapPath: '', depth: 0, selected: false, index: -1 }];
    let made = Promise.resolve();
    while (level.length > 0) {
      throwIfCanceled(this.signal);
      const next: DirToPlan[] = [];
      const dirs: PlannedNode[] = [];
      const batches: DirToPlan[][] = [];
      for (let i = 0; i < level.length; i += TREES_PER_BATCH) batches.push(level.slice(i, i + TREES_PER_BATCH));
      await mapLimit(batches, TREE_BATCHES_IN_FLIGHT, async (batch) => {
        const trees = await this.repo.loadTrees(batch.map(({ treeId }) => treeId));
        batch.forEach((dir, i) => {
          for (const node of trees[i]?.nodes ?? []) {
            // decodeTree already rejects these; checked again because a path escape must never happen.
            if (!isSafeName(node.name)) throw new RestoreError(`The snapshot names an unsafe path component ${JSON.stringify(node.name.toString())}.`);
            const snapshotPath = `${dir.snapPath}/${node.name.toString()}`;
            const pathBytes = Buffer.from(snapshotPath);
            if (isExcluded(pathBytes, excludes)) continue;
            const selected = dir.selected || includes.length === 0 || isExcluded(pathBytes, includes);
            const entry: PlannedNode = { node, local: below(dir.local, node.name), snapshotPath, depth: dir.depth + 1 };
            found.push({ entry, parent: dir.index, keep: selected });
            if (node.type !== 'dir') continue;
            next.push({ treeId: node.subtree, local: entry.local, snapPath: snapshotPath, depth: entry.depth, selected, index: found.length - 1 });
            dirs.push(entry);
          }
        });
      });
      if (makeDirs) made = made.then(() => this.makeDirs(dirs.filter((entry) => !this.isSkipped(entry))));
      level = next;
    }
    await made;
    // A directory is restored when chosen itself or when something inside it is; children come
    // after their parents, so one backward pass carries that up.
    for (let i = found.length - 1; i >= 0; i--) {
      const item = found[i];
      const parent = item && item.keep && item.parent >= 0 ? found[item.parent] : undefined;
      if (parent) parent.keep = true;
    }
    return found.filter(({ keep }) => keep).map(({ entry }) => entry);
  }

  /**
   * Creates every directory (unless `dirsMade`: planTree made them), file, link and special
   * file; returns files that need content.
   * Directories first, parents before children, then everything else at once, then hard links
   * to the files they share an inode with. A file of one blob (most small files) is left for
   * the write of that blob to create.
   */
  private async createNodes(plan: readonly PlannedNode[], { dirsMade }: { dirsMade: boolean }): Promise<ContentFile[]> {
    const withContent: ContentFile[] = [];
    const dirs: PlannedNode[] = [];
    const firstPathOfInode = new Map<string, Buffer>();
    const links: Array<{ first: Buffer; entry: PlannedNode }> = [];
    const others: PlannedNode[] = [];
    const files: PlannedNode[] = [];
    for (const entry of plan) {
      const { node } = entry;
      if (this.unchanged.has(entry.local.toString('latin1'))) continue;
      if (node.type === 'dir') {
        if (!dirsMade) dirs.push(entry);
      } else if (node.type === 'file' && node.links > 1) {
        const inodeKey = `${node.deviceId}:${node.inode}`;
        const first = firstPathOfInode.get(inodeKey);
        if (first) links.push({ first, entry });
        else {
          firstPathOfInode.set(inodeKey, entry.local);
          files.push(entry);
        }
      } else if (node.type === 'file' && node.content.length === 1) withContent.push({ node, local: entry.local, snapshotPath: entry.snapshotPath, create: true });
      else if (node.type === 'file') files.push(entry);
      else others.push(entry);
    }
    // A level at a time, parents before children; within a level, in parallel batches.
    for (const level of byDepth(dirs, 'shallowest first')) await this.makeDirs(level.filter((entry) => !this.isSkipped(entry)));
    await this.inBatches(files, (batch) => ({ kind: 'create-files', rootFd: this.rootFd, files: batch.map(({ node, local }) => ({ path: local, size: node.type === 'file' ? node.size : 0 })) }), (entry) => {
      const { node, local, snapshotPath } = entry;
      if (node.type === 'file' && node.content.length > 0) withContent.push({ node, local, snapshotPath, create: false });
      this.summary.files_restored++;
    });
    const here = new TargetDirs(this.rootFd);
    await mapLimit(others, FS_OPS_IN_FLIGHT, ({ node, local, snapshotPath }) => this.attempt(snapshotPath, async () => {
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
    await mapLimit(links, FS_OPS_IN_FLIGHT, ({ first, entry }) => this.attempt(entry.snapshotPath, () => {
      createHardlink(here, first, entry.local);
      this.summary.files_restored++;
      return Promise.resolve();
    }));
    here.close();
    return withContent;
  }

  /** Whether `entry` lies in a directory that could not be made; if it is a directory itself, so is what lies in it. */
  private isSkipped(entry: PlannedNode): boolean {
    if (!this.skippedDirs.has(parentKey(entry.local))) return false;
    if (entry.node.type === 'dir') this.skippedDirs.add(entry.local.toString('latin1'));
    return true;
  }

  /** Makes directories whose parents exist, noting which existed before (their entries are inspected) and which could not be made. */
  private async makeDirs(entries: readonly PlannedNode[]): Promise<void> {
    await this.inBatches(entries, (batch) => ({ kind: 'make-dirs', rootFd: this.rootFd, rules: this.rules, paths: batch.map(({ local }) => local) }), (entry, outcome) => {
      if (outcome === 'existed') this.existedDirs.add(entry.local.toString('latin1'));
      this.summary.dirs_restored++;
    }, (entry) => { this.skippedDirs.add(entry.local.toString('latin1')); });
  }

  /**
   * Decides, in the workers, what happens to whatever already stands where the plan puts a
   * non-directory, in directories that existed before (safe-fs.ts inspectExisting); returns the
   * plan without the entries left alone or in conflict. In an empty target there is nothing to do.
   */
  private async inspectExisting(plan: PlannedNode[]): Promise<PlannedNode[]> {
    const candidates = plan.filter((entry) => entry.node.type !== 'dir' && this.existedDirs.has(parentKey(entry.local)));
    if (candidates.length === 0) return plan;
    const dropped = new Set<string>();
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
      const key = entry.local.toString('latin1');
      if (verdict === 'leave') {
        dropped.add(key);
        this.summary.entries_left_alone++;
      } else if (verdict === 'unchanged') {
        this.unchanged.add(key);
        this.summary.files_unchanged++;
      }
    }, (entry) => { dropped.add(entry.local.toString('latin1')); });
    return dropped.size === 0 ? plan : plan.filter((entry) => !dropped.has(entry.local.toString('latin1')));
  }

  /**
   * --delete: removes from every restored directory that existed before whatever the snapshot
   * does not have there, through the target's handles (a directory with all it holds).
   */
  private deleteExtras(plan: readonly PlannedNode[]): void {
    const keep = new Map<string, Set<string>>();
    for (const { local } of plan) {
      const dir = parentKey(local);
      let names = keep.get(dir);
      if (!names) keep.set(dir, (names = new Set()));
      names.add(local.subarray(local.lastIndexOf(0x2f) + 1).toString('latin1'));
    }
    const dirs = new TargetDirs(this.rootFd);
    try {
      for (const dir of this.existedDirs) {
        if (this.skippedDirs.has(dir)) continue;
        const names = keep.get(dir) ?? new Set<string>();
        try {
          const fd = dirs.dir(Buffer.from(dir, 'latin1'));
          for (const name of readdirSync(atPath(fd), { encoding: 'buffer' })) {
            if (names.has(name.toString('latin1'))) continue;
            removeEntry(fd, name);
            this.summary.entries_deleted++;
          }
        } catch (err) {
          this.fail(dir === '' ? '/' : `/${Buffer.from(dir, 'latin1').toString()}`, err);
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

  /** Runs one step for one path; a failure is reported and the restore goes on. */
  private async attempt(snapshotPath: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.fail(snapshotPath, err);
    }
  }


  private async writeContent(files: readonly ContentFile[]): Promise<void> {
    const byPack = new Map<string, Map<string, NeededBlob>>();
    for (const { node, local, snapshotPath, create } of files) {
      const state: FileState = { local, snapshotPath, create, failed: false };
      let offset = 0;
      for (const id of node.content) {
        const loc = this.repo.locate(id);
        if (!loc) throw new RestoreError(`Blob ${id.toString('hex')} of ${snapshotPath} is in no index; run "arca check".`);
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
      for (const group of coalesceSpans(blobs.values(), CONTENT_READ_LIMITS)) await this.restoreRange(packHex, group);
    });
  }

  /**
   * Fetches one range of a pack and has a worker decode its blobs and write them into the files.
   * If the range fails as a whole (a cut pack), each blob is tried alone, so one damaged blob
   * neither takes its intact neighbours down nor goes unnamed.
   */
  private async restoreRange(packHex: string, blobs: readonly NeededBlob[]): Promise<void> {
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
        targets.map(({ blob, target }) => ({ blob, path: target.file.local, offset: target.offset, create: target.file.create })),
      );
      failures = result.failures;
      this.summary.bytes_restored += result.bytes;
    } catch (err) {
      if (blobs.length > 1 && !(err instanceof ObjectNotFoundError)) {
        for (const blob of blobs) await this.restoreRange(packHex, [blob]);
        return;
      }
      for (const blob of blobs) for (const t of blob.targets) this.finishWrite(t.file, err);
      return;
    }
    for (const [i, { blob, target }] of targets.entries()) {
      const failure = failures[i];
      const damaged = failure?.code === BLOB_DAMAGED;
      // A blob that does not decode is named with its pack; a file-system error speaks for itself.
      const err = failure === undefined ? undefined
        : damaged ? new CorruptObjectError(name, `blob ${(blobs[blob] ?? first).id.toString('hex')}: ${failure.message}`)
          : new RestoreError(failure.message);
      this.finishWrite(target.file, err);
    }
  }

  private finishWrite(file: FileState, err: unknown): void {
    if (err === undefined) {
      if (file.create) this.summary.files_restored++;
    } else if (!file.failed) {
      file.failed = true;
      this.failedFiles.add(file.local.toString('latin1'));
      this.fail(file.snapshotPath, err);
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
    {
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

  /** Metadata last: files and links at once, then directories deepest first (a level at a time). */
  private async applyAllMetadata(plan: readonly PlannedNode[]): Promise<void> {
    const metadataOfBatch = (batch: readonly PlannedNode[]): ApplyMetadataTask => ({ kind: 'apply-metadata', rootFd: this.rootFd, nodes: batch.map(({ node, local }) => metadataOf(local, node)) });
    const settable = plan.filter((p) => p.node.type !== 'dir' && p.node.type !== 'socket' && !this.failedFiles.has(p.local.toString('latin1')));
    await this.inBatches(settable, metadataOfBatch);
    for (const level of byDepth(plan.filter((p) => p.node.type === 'dir'), 'deepest first')) await this.inBatches(level, metadataOfBatch);
  }

}
