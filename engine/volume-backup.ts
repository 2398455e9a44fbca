import os from 'node:os';
import path from 'node:path';
import { BlobWriter } from '../repository/blob-writer.ts';
import { OperationCanceledError, UsageError } from '../repository/errors.ts';
import { DEFAULT_LEASE_TIMING, Lease, type LeaseOptions } from '../repository/maintenance/leases.ts';
import type { Repository } from '../repository/repository.ts';
import type { BackupSummary, Snapshot, SnapshotFilter, SnapshotLabels, StoredSnapshot } from '../repository/snapshot/snapshot.ts';
import { Archiver } from './backup/archiver.ts';
import { withSpoolDir } from './backup/spool-dir.ts';
import { Job, type JobOptions } from './job.ts';
import type { Reporter } from './progress.ts';

/**
 * Which snapshot a backup compares against (files unchanged since are not read again):
 * - none: read everything;
 * - snapshot: this one (a full ID, an ID prefix of 8+ hex digits, or "latest");
 * - latest: the newest snapshot matching `filter` (host, tags, labels...), and with `samePaths`
 *   only one of the same set of paths. The CLI's default is the host and the paths; the agent's,
 *   the volume's labels.
 */
export type ParentChoice =
  | { readonly kind: 'none' }
  | { readonly kind: 'snapshot'; readonly ref: string }
  | { readonly kind: 'latest'; readonly filter: SnapshotFilter; readonly samePaths: boolean };

export interface BackupVolumeOptions extends JobOptions {
  /**
   * Take the one path, a directory, as the snapshot's root (Snapshot.root): its contents are the
   * tree, so a restore puts them straight into a target and a parent serves wherever the
   * directory has moved (a pod volume under a new pod's UID). Default: the tree mirrors the
   * absolute paths, as restic's does.
   */
  readonly asRoot?: boolean | undefined;
  /** Recorded in the snapshot (default: this machine's name). */
  readonly host?: string | undefined;
  readonly tags?: readonly string[] | undefined;
  /** The caller's metadata, recorded in the snapshot (e.g. Kubernetes namespace, pod, volume, PVC). */
  readonly labels?: SnapshotLabels | undefined;
  /** Default: the latest snapshot of the same host and paths. */
  readonly parent?: ParentChoice | undefined;
  readonly excludes?: readonly string[] | undefined;
  /** Stay on the filesystem of each path (default true). */
  readonly oneFileSystem?: boolean | undefined;
  readonly withAtime?: boolean | undefined;
  /** Recorded as the snapshot's time instead of now. */
  readonly time?: Date | undefined;
  /** zstd level for this backup (default: the repository's). */
  readonly compressionLevel?: number | undefined;
  /** Count files and bytes first, beside the backup, so progress has totals (an ETA). */
  readonly countTotals?: boolean | undefined;
  readonly reporter?: Reporter | undefined;
  readonly lease?: LeaseOptions | undefined;
}

export type BackupOutcome =
  | {
    readonly status: 'completed';
    readonly snapshotId: string;
    readonly snapshot: Snapshot;
    /** summary.files_unreadable counts what could not be read and is not in the snapshot. */
    readonly summary: BackupSummary;
    readonly durationSeconds: number;
  }
  | {
    /** Cancelled: no snapshot was written; what was stored and indexed is reused by the next run. */
    readonly status: 'canceled';
    readonly filesProcessed: number;
    readonly bytesProcessed: number;
    readonly durationSeconds: number;
  };

async function chooseParent(repo: Repository, choice: ParentChoice, paths: readonly string[]): Promise<StoredSnapshot | undefined> {
  switch (choice.kind) {
    case 'none': return undefined;
    case 'snapshot': return repo.resolveSnapshot(choice.ref);
    case 'latest': return (await repo.listSnapshots(choice.filter)).find((s) => !choice.samePaths || sameSet(s.snapshot.paths, paths));
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/**
 * Backs up `paths` (a volume's directory, or several paths) into a new snapshot of `repo`: takes
 * a writer's lease, loads the index, picks the parent, spools packs, runs the worker pool, and
 * writes the snapshot. The one way in for every caller (CLI, agent, tests, benchmarks).
 *
 * Cancelled through `signal`, it stops within a second or two at any moment: the pool's tasks and
 * storage calls end at once, the index of the packs already stored is written (within a grace),
 * the lease is released, no snapshot is written, and the outcome is "canceled". Other failures throw.
 */
export async function backupVolume(repo: Repository, paths: string | readonly string[], options: BackupVolumeOptions = {}): Promise<BackupOutcome> {
  const sources = [...new Set((typeof paths === 'string' ? [paths] : paths).map((p) => path.resolve(p)))].sort();
  if (sources.length === 0) throw new UsageError('Give at least one path to back up.');
  const job = new Job(repo, options, { operation: 'backup' });
  const host = options.host ?? os.hostname();
  const level = options.compressionLevel ?? repo.config.compression.level;
  let archiver: Archiver | undefined;
  try {
    return await job.run(async () => {
      // The lease comes before the index: a prune must see this writer before it can matter.
      const lease = await Lease.acquire(job.cleanupRepo, 'backup', options.lease ?? { timing: DEFAULT_LEASE_TIMING });
      // The job's own view writes the index files and the snapshot: those go under the lease too.
      job.repo.attachLease(lease);
      const writer = new BlobWriter(job.repo, { logger: job.logger });
      let failed = false;
      try {
        await job.repo.loadIndex();
        const parent = await chooseParent(job.repo, options.parent ?? { kind: 'latest', filter: { host }, samePaths: true }, sources);
        const result = await withSpoolDir(job.repo.storage, (spoolDir) => job.withPool((pool) => {
          archiver = new Archiver(job.repo, pool, writer, options.reporter);
          return archiver.run({
            paths: sources, asRoot: options.asRoot, host, parent, lease, tags: options.tags, labels: options.labels, excludes: options.excludes,
            oneFileSystem: options.oneFileSystem, withAtime: options.withAtime, time: options.time, compressionLevel: level,
            scan: options.countTotals, signal: job.signal,
          });
        }, { spoolDir, compressionLevel: level }, options.workers));
        job.logger.info({ snapshot: result.snapshotId }, `saved snapshot ${result.snapshotId.slice(0, 8)}`);
        return { status: 'completed' as const, ...result, durationSeconds: job.elapsedSeconds };
      } catch (err) {
        failed = true;
        if (job.canceled) await indexStoredPacks(job, writer);
        throw err;
      } finally {
        await releaseLease(job, lease, failed);
      }
    });
  } catch (err) {
    if (!(err instanceof OperationCanceledError)) throw err;
    job.logger.info({}, 'backup canceled; no snapshot was written');
    return { status: 'canceled', filesProcessed: archiver?.processed.files ?? 0, bytesProcessed: archiver?.processed.bytes ?? 0, durationSeconds: job.elapsedSeconds };
  }
}

/**
 * Releases the lease: awaited after success and after a cancel (within the grace), so the caller
 * returns with it gone; after a failure, in the background, as the storage that failed the
 * backup would likely only make the error wait. A lease left behind expires by itself.
 */
async function releaseLease(job: Job, lease: Lease, failed: boolean): Promise<void> {
  const releasing = lease.release().catch((err: unknown) => {
    job.logger.warn({}, `could not release the lease (${err instanceof Error ? err.message : String(err)}); it expires by itself`);
  });
  if (!failed || job.canceled) await releasing;
}

/** After a cancel: the packs that were stored get their index, so the next run reuses them. */
async function indexStoredPacks(job: Job, writer: BlobWriter): Promise<void> {
  try {
    const packs = await writer.indexStored(job.cleanupRepo);
    if (packs > 0) job.logger.info({}, `indexed ${packs} packs stored before the cancel`);
  } catch (err) {
    job.logger.warn({}, `could not index the packs stored before the cancel (${err instanceof Error ? err.message : String(err)}); the next backup stores their data again`);
  }
}
