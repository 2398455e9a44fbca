import { OperationCanceledError } from '../repository/errors.ts';
import type { SnapshotFilter, StoredSnapshot } from '../repository/snapshot/snapshot.ts';
import type { Repository } from '../repository/repository.ts';
import { applyRootMetadata } from './fs/metadata.ts';
import { Job, type JobOptions } from './job.ts';
import type { Reporter } from './progress.ts';
import { Restorer, type RestoreOptions, type RestoreSummary } from './restore/restorer.ts';

/** The restorer's own options (includes, excludes, verify, overwrite, delete) and the job's. */
export interface RestoreSnapshotOptions extends JobOptions, Omit<RestoreOptions, 'target' | 'signal'> {
  /** Which snapshots "latest" chooses from. */
  readonly filter?: SnapshotFilter | undefined;
  readonly reporter?: Reporter | undefined;
}

export type RestoreOutcome =
  | {
    readonly status: 'completed';
    readonly snapshotId: string;
    /** summary.errors counts the files and directories that could not be restored. */
    readonly summary: RestoreSummary;
    readonly durationSeconds: number;
  }
  | {
    /** Cancelled: the target holds part of the snapshot (what was written so far). */
    readonly status: 'canceled';
    readonly snapshotId: string | undefined;
    readonly summary: RestoreSummary | undefined;
    readonly durationSeconds: number;
  };

/**
 * Restores a snapshot (a StoredSnapshot, or a reference: full ID, 8+ hex digit prefix, or
 * "latest" under `filter`) of `repo` into the directory `target`: loads the index, runs the
 * worker pool, and returns a typed outcome. Cancelled through `signal`, it stops within a second
 * or two and returns "canceled"; other failures throw.
 */
export async function restoreSnapshot(repo: Repository, snapshot: string | StoredSnapshot, target: string, options: RestoreSnapshotOptions = {}): Promise<RestoreOutcome> {
  const job = new Job(repo, options, { operation: 'restore' });
  let restorer: Restorer | undefined;
  let snapshotId: string | undefined;
  try {
    return await job.run(async () => {
      await job.repo.loadIndex();
      const stored = typeof snapshot === 'string' ? await job.repo.resolveSnapshot(snapshot, options.filter) : snapshot;
      snapshotId = stored.id;
      const summary = await job.withPool((pool) => {
        restorer = new Restorer(job.repo, pool, options.reporter);
        return restorer.run(stored.snapshot, {
          target, includes: options.includes, excludes: options.excludes, verify: options.verify, overwrite: options.overwrite, delete: options.delete, signal: job.signal,
        });
      }, {}, options.workers);
      // A snapshot rooted at a directory (Snapshot.root) restores into the target as that
      // directory; with includes, only parts of it are restored, and the target stays as it was.
      const { root } = stored.snapshot;
      if (root !== undefined && (options.includes ?? []).length === 0 && !job.canceled) {
        applyRootMetadata(target, root);
      }
      job.logger.info({ snapshot: stored.id }, `restored snapshot ${stored.id.slice(0, 8)}`);
      return { status: 'completed' as const, snapshotId: stored.id, summary, durationSeconds: job.elapsedSeconds };
    });
  } catch (err) {
    if (!(err instanceof OperationCanceledError)) throw err;
    job.logger.info({ snapshot: snapshotId }, 'restore canceled');
    return { status: 'canceled', snapshotId, summary: restorer?.summary, durationSeconds: job.elapsedSeconds };
  }
}
