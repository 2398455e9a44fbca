import { BlobWriter } from '../repository/blob-writer.ts';
import { OperationCanceledError, UsageError } from '../repository/errors.ts';
import { SnapshotCopier, type CopyStats } from '../repository/maintenance/copy.ts';
import { DEFAULT_LEASE_TIMING, Lease, type LeaseOptions } from '../repository/maintenance/leases.ts';
import type { Repository } from '../repository/repository.ts';
import { Job, type JobOptions } from './job.ts';

export interface CopySnapshotsOptions extends Omit<JobOptions, 'workers'> {
  /** Source snapshots to copy (IDs, 8+ hex digit prefixes or "latest"); default: all of them. */
  readonly snapshots?: readonly string[] | undefined;
  /** Told after each snapshot is saved in the destination. */
  readonly onCopied?: ((copied: CopiedSnapshot) => void) | undefined;
  readonly lease?: LeaseOptions | undefined;
}

export interface CopiedSnapshot {
  readonly sourceId: string;
  readonly snapshotId: string;
}

export interface CopyResult {
  readonly copied: readonly CopiedSnapshot[];
  readonly stats: CopyStats;
  /** Bytes of packs written to the destination. */
  readonly dataAdded: number;
  readonly durationSeconds: number;
}

/** Cancelled: the snapshots in `copied` were saved; the packs stored for the next are indexed (a later copy reuses them). */
export type CopyOutcome = (CopyResult & { readonly status: 'completed' }) | (CopyResult & { readonly status: 'canceled' });

/**
 * Copies snapshots from `source` into `dest` (different keys, chunker parameters or backends),
 * deduplicated at the destination; snapshots copied before are skipped. Takes a writer's lease
 * on the destination; cancelled through `signal`, it stops promptly and returns "canceled".
 */
export async function copySnapshots(source: Repository, dest: Repository, options: CopySnapshotsOptions = {}): Promise<CopyOutcome> {
  if (dest.config.id === source.config.id) throw new UsageError('The source and destination are the same repository.');
  const job = new Job(dest, options, { operation: 'copy', source: source.storage.location });
  const from = source.withSignal(job.signal);
  const copied: CopiedSnapshot[] = [];
  // An index file after every pack: an interrupted copy resumes from the last pack it stored.
  const writer = new BlobWriter(job.repo, { packsPerIndex: 1, logger: job.logger });
  const copier = new SnapshotCopier(from, job.repo, writer);
  const result = (): CopyResult => ({ copied, stats: { ...copier.stats }, dataAdded: writer.stats.bytesAdded, durationSeconds: job.elapsedSeconds });
  try {
    return await job.run(async () => {
      await from.loadIndex();
      const lease = await Lease.acquire(job.cleanupRepo, 'copy', options.lease ?? { timing: DEFAULT_LEASE_TIMING });
      // The job's own view writes the index files and the snapshot: those go under the lease too.
      job.repo.attachLease(lease);
      try {
        await job.repo.loadIndex();
        const chosen = options.snapshots === undefined ? await from.listSnapshots() : await Promise.all(options.snapshots.map((ref) => from.resolveSnapshot(ref)));
        for (const stored of (await copier.pending(chosen)).reverse()) {
          const snapshot = await copier.copyTrees(stored);
          // Each snapshot is saved only after everything it references is packed and indexed.
          await writer.flush();
          lease.assertFresh();
          const snapshotId = await job.repo.saveSnapshot(snapshot);
          copied.push({ sourceId: stored.id, snapshotId });
          options.onCopied?.({ sourceId: stored.id, snapshotId });
        }
        return { status: 'completed' as const, ...result() };
      } catch (err) {
        if (job.canceled) await writer.indexStored(job.cleanupRepo).catch(() => 0);
        throw err;
      } finally {
        await lease.release().catch(() => undefined);
      }
    });
  } catch (err) {
    if (!(err instanceof OperationCanceledError)) throw err;
    return { status: 'canceled', ...result() };
  }
}
