import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { blobId } from '../../repository/crypto/master-key.ts';
import { isExcluded } from '../backup/exclude.ts';
import type { Reporter } from '../backup/progress.ts';
import { ArcaError, CorruptObjectError } from '../../repository/errors.ts';
import { packName } from '../../repository/object-names.ts';
import type { Repository } from '../../repository/repository.ts';
import type { Snapshot } from '../../repository/snapshot/snapshot.ts';
import { isSafeName, type FileNode, type TreeNode } from '../../repository/tree/tree.ts';
import { mapLimit } from '../../repository/repository.ts';
import { ObjectNotFoundError } from '../../repository/storage/storage.ts';
import type { WorkerPool } from '../pool/worker-pool.ts';
import { BLOB_DAMAGED, type ApplyMetadataTask, type FsBatchResult, type FsBatchTask, type WriteBlobsResult } from '../pool/messages.ts';
import { createHardlink, createSpecial, createSymlink } from './safe-fs.ts';
import { metadataOf } from './metadata.ts';

export interface RestoreOptions {
  readonly target: string;
  /** Restore only paths (snapshot paths, e.g. "/srv/data/x") matching one of these, with their contents. */
  readonly includes?: readonly string[];
  readonly excludes?: readonly string[];
  /** Re-read every restored file and check its chunks' hashes. */
  readonly verify?: boolean;
}

export interface RestoreSummary {
  files_restored: number;
  dirs_restored: number;
  other_restored: number;
  bytes_restored: number;
  errors: number;
  files_verified: number;
}

interface PlannedNode {
  readonly node: TreeNode;
  /** Path under the target, from validated names only. */
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
  readonly create: boolean;
}

interface FileState {
  readonly local: Buffer;
  /** Not created yet: its one blob's write creates it (see WriteBlobsTask). */
  readonly create: boolean;
  /** Set once a write failed: the file is reported once and gets no more writes. */
  failed: boolean;
}

const PACK_CONCURRENCY = 4;
/** Subtrees of one directory planned at once. */
const SUBTREES_IN_FLIGHT = 8;
/** File-system calls (links, special files) in flight at once: they wait on the disk, not the CPU. */
const FS_OPS_IN_FLIGHT = 32;
/** Files created, or nodes given their metadata, per worker task. */
const FS_BATCH = 128;
/** Blobs of a pack closer than this are fetched in one range read... */
const RANGE_GAP = 1 << 20;
/**
 * ...of at most this many bytes (a larger blob is read alone), which bounds memory at
 * PACK_CONCURRENCY × this plus plaintext. 8 MiB cost 30 MiB more peak RSS and was no faster.
 */
const MAX_RANGE = 4 << 20;

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
  readonly summary: RestoreSummary = { files_restored: 0, dirs_restored: 0, other_restored: 0, bytes_restored: 0, errors: 0, files_verified: 0 };
  private started = 0;
  /** Local paths (latin1) of files whose content failed: they get no metadata. */
  private readonly failedFiles = new Set<string>();
  private filesTotal: number | undefined;
  private bytesTotal: number | undefined;
  /** Directories waiting for the next make-dirs batch (makeDirSoon). */
  private dirsToMake: Array<{ readonly entry: PlannedNode; readonly resolve: () => void }> = [];

  constructor(repo: Repository, pool: WorkerPool, reporter: Reporter = {}) {
    this.repo = repo;
    this.pool = pool;
    this.reporter = reporter;
  }

  async run(snapshot: Snapshot, options: RestoreOptions): Promise<RestoreSummary> {
    this.started = performance.now();
    const target = Buffer.from(path.resolve(options.target));
    await fsp.mkdir(target, { recursive: true });
    if (!(await fsp.lstat(target)).isDirectory()) throw new RestoreError(`The restore target ${options.target} is not a directory.`);
    // Without --include every directory is restored, so each is made as soon as its tree is
    // read, by the workers, while the main thread goes on reading trees.
    const madeEarly = (options.includes ?? []).length === 0;
    const plan = await this.planTree(Buffer.from(snapshot.tree, 'hex'), target, '', 0, options, false, madeEarly ? Promise.resolve() : undefined);
    const files = await this.createNodes(plan, { dirsMade: madeEarly });
    this.filesTotal = plan.filter((p) => p.node.type === 'file').length;
    this.bytesTotal = plan.reduce((sum, p) => sum + (p.node.type === 'file' ? p.node.size : 0), 0);
    const timer = setInterval(() => { this.reportProgress(); }, 1000);
    try {
      await this.writeContent(files);
    } finally {
      clearInterval(timer);
    }
    if (options.verify) await this.verify(plan);
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

  private fail(where: string, err: unknown): void {
    this.summary.errors++;
    this.reporter.error?.({ path: where, message: err instanceof Error ? err.message : String(err) });
  }

  /**
   * The nodes under `treeId` to restore, parents before children. Subdirectories are planned a
   * few at a time (each needs its tree loaded), and their plans are joined in order. With
   * `made` (settled once `local` exists, or failed to be made), subdirectories are made on the
   * way (makeDirSoon); without, createNodes makes them.
   */
  private async planTree(
    treeId: Buffer, local: Buffer, snapPath: string, depth: number, options: RestoreOptions, included: boolean, made: Promise<void> | undefined,
  ): Promise<PlannedNode[]> {
    const tree = await this.repo.loadTree(treeId);
    const includes = options.includes ?? [];
    const parts = await mapLimit(tree.nodes, SUBTREES_IN_FLIGHT, async (node): Promise<PlannedNode[]> => {
      // decodeTree already rejects these; checked again because a path escape must never happen.
      if (!isSafeName(node.name)) throw new RestoreError(`The snapshot names an unsafe path component ${JSON.stringify(node.name.toString())}.`);
      const childLocal = Buffer.concat([local, Buffer.from('/'), node.name]);
      const childSnap = `${snapPath}/${node.name.toString()}`;
      const childPathBuf = Buffer.from(childSnap);
      if (isExcluded(childPathBuf, options.excludes ?? [])) return [];
      const selected = included || includes.length === 0 || isExcluded(childPathBuf, includes);
      const entry: PlannedNode = { node, local: childLocal, snapshotPath: childSnap, depth: depth + 1 };
      if (node.type !== 'dir') return selected ? [entry] : [];
      const childMade = made?.then(() => this.makeDirSoon(entry));
      const inner = await this.planTree(node.subtree, childLocal, childSnap, depth + 1, options, selected, childMade);
      await childMade;
      // A directory is restored when chosen itself or when something inside it is.
      return selected || inner.length > 0 ? [entry, ...inner] : [];
    });
    return parts.flat();
  }


  /**
   * Makes a directory in the next worker batch (FS_BATCH of them, or whatever is waiting when
   * the event loop comes round); settles once the batch is done. A failure is reported there.
   */
  private makeDirSoon(entry: PlannedNode): Promise<void> {
    return new Promise((resolve) => {
      this.dirsToMake.push({ entry, resolve });
      if (this.dirsToMake.length >= FS_BATCH) this.makeWaitingDirs();
      else if (this.dirsToMake.length === 1) setImmediate(() => { this.makeWaitingDirs(); });
    });
  }

  private makeWaitingDirs(): void {
    const batch = this.dirsToMake.splice(0);
    if (batch.length === 0) return;
    const entries = batch.map(({ entry }) => entry);
    void this.inBatches(entries, (b) => ({ kind: 'make-dirs', paths: b.map(({ local }) => local) }), () => { this.summary.dirs_restored++; })
      .finally(() => { for (const { resolve } of batch) resolve(); });
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
      } else if (node.type === 'file' && node.content.length === 1) withContent.push({ node, local: entry.local, create: true });
      else if (node.type === 'file') files.push(entry);
      else others.push(entry);
    }
    // A level at a time, parents before children; within a level, in parallel batches.
    for (const level of byDepth(dirs, 'shallowest first')) {
      await this.inBatches(level, (batch) => ({ kind: 'make-dirs', paths: batch.map(({ local }) => local) }), () => { this.summary.dirs_restored++; });
    }
    await this.inBatches(files, (batch) => ({ kind: 'create-files', files: batch.map(({ node, local }) => ({ path: local, size: node.type === 'file' ? node.size : 0 })) }), (entry) => {
      const { node, local } = entry;
      if (node.type === 'file' && node.content.length > 0) withContent.push({ node, local, create: false });
      this.summary.files_restored++;
    });
    await mapLimit(others, FS_OPS_IN_FLIGHT, ({ node, local, snapshotPath }) => this.attempt(snapshotPath, async () => {
      switch (node.type) {
        case 'symlink':
          await createSymlink(local, node.linkTarget);
          break;
        case 'fifo':
          await createSpecial(local, 'fifo', 0n);
          break;
        case 'chardev':
        case 'blockdev':
          await createSpecial(local, node.type, node.rdev);
          break;
        case 'socket':
          return; // A socket belongs to a running process; there is nothing to restore.
        case 'file':
        case 'dir':
          return; // Made above.
      }
      this.summary.other_restored++;
    }));
    await mapLimit(links, FS_OPS_IN_FLIGHT, ({ first, entry }) => this.attempt(entry.snapshotPath, async () => {
      await createHardlink(first, entry.local);
      this.summary.files_restored++;
    }));
    return withContent;
  }

  /**
   * Runs file-system steps for `entries` in worker batches of FS_BATCH, all batches at once (the
   * pool queues them); `done` is called for each entry that succeeded, failures are reported.
   */
  private async inBatches(
    entries: readonly PlannedNode[],
    request: (batch: readonly PlannedNode[]) => FsBatchTask,
    done: (entry: PlannedNode) => void = () => undefined,
  ): Promise<void> {
    const batches: PlannedNode[][] = [];
    for (let i = 0; i < entries.length; i += FS_BATCH) batches.push(entries.slice(i, i + FS_BATCH));
    await Promise.all(batches.map(async (batch) => {
      let failures: FsBatchResult['failures'];
      try {
        failures = (await this.pool.fsBatch(request(batch))).failures;
      } catch (err) {
        for (const entry of batch) this.fail(entry.snapshotPath, err);
        return;
      }
      batch.forEach((entry, i) => {
        const failure = failures[i];
        if (failure === undefined) done(entry);
        else this.fail(entry.snapshotPath, new RestoreError(failure.message));
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
    for (const { node, local, create } of files) {
      const state: FileState = { local, create, failed: false };
      let offset = 0;
      for (const id of node.content) {
        const loc = this.repo.locate(id);
        if (!loc) throw new RestoreError(`Blob ${id.toString('hex')} of ${local.toString()} is in no index; run "arca check".`);
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
      const sorted = [...blobs.values()].sort((a, b) => a.offset - b.offset);
      // Coalesce nearby blobs into one range read each.
      let group: typeof sorted = [];
      const groups: Array<typeof sorted> = [];
      for (const blob of sorted) {
        const last = group[group.length - 1];
        const first = group[0];
        if (first && last && (blob.offset - (last.offset + last.length) > RANGE_GAP || blob.offset + blob.length - first.offset > MAX_RANGE)) {
          groups.push(group);
          group = [];
        }
        group.push(blob);
      }
      if (group.length > 0) groups.push(group);
      for (const g of groups) await this.restoreRange(packHex, g);
    });
  }

  /**
   * Fetches one range of a pack and has a worker decode its blobs and write them into the files.
   * If the range fails as a whole (a cut pack), each blob is tried alone, so one damaged blob
   * neither takes its intact neighbours down nor goes unnamed.
   */
  private async restoreRange(packHex: string, blobs: readonly NeededBlob[]): Promise<void> {
    const first = blobs[0];
    const last = blobs[blobs.length - 1];
    if (!first || !last) return;
    const start = first.offset;
    const name = packName(packHex);
    const targets = blobs.flatMap((blob, i) => blob.targets.filter((t) => !t.file.failed).map((t) => ({ blob: i, target: t })));
    let failures: WriteBlobsResult['failures'];
    try {
      const data = await this.repo.storage.get(name, { offset: start, length: last.offset + last.length - start });
      const result = await this.pool.writeBlobs(
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
      this.fail(file.local.toString(), err);
    }
  }

  private async verify(plan: readonly PlannedNode[]): Promise<void> {
    for (const { node, local, snapshotPath } of plan) {
      if (node.type !== 'file' || node.content.length === 0) continue;
      try {
        const handle = await fsp.open(local, 'r');
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
    const metadataOfBatch = (batch: readonly PlannedNode[]): ApplyMetadataTask => ({ kind: 'apply-metadata', nodes: batch.map(({ node, local }) => metadataOf(local, node)) });
    const settable = plan.filter((p) => p.node.type !== 'dir' && p.node.type !== 'socket' && !this.failedFiles.has(p.local.toString('latin1')));
    await this.inBatches(settable, metadataOfBatch);
    for (const level of byDepth(plan.filter((p) => p.node.type === 'dir'), 'deepest first')) await this.inBatches(level, metadataOfBatch);
  }

}
