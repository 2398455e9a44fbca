// BackupRepository: opens the repository with its Secrets and lists its snapshots (phase Ready,
// or NotReady with the reason), again every check period and whenever a Secret it names changes.
import type { BackupRepository } from '../../kube/api/kinds.ts';
import { parseDuration } from '../../kube/duration.ts';
import { updateStatus } from '../../kube/status.ts';
import { RepositoryAccessError } from '../../repository-access/errors.ts';
import type { ControllerContext } from '../context.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { maintain } from './maintenance.ts';
import { syncBackupSets } from './sync.ts';

type Status = NonNullable<BackupRepository['status']>;

export interface Validation {
  phase: 'Ready' | 'NotReady';
  message: string;
}

export async function reconcileRepository(ctx: ControllerContext, name: string): Promise<ReconcileResult> {
  const repository = ctx.caches.repositories.get(name, ctx.namespace);
  if (repository === undefined || repository.metadata.deletionTimestamp !== undefined) return undefined;
  const validation = await validate(ctx, name);
  const previous = repository.status?.phase;
  await writeRepositoryStatus(ctx, repository, { ...validation, lastValidationTime: ctx.now().toISOString() });
  if (validation.phase !== previous) {
    if (validation.phase === 'Ready') await ctx.events.normal(repository, 'Ready', 'Validate', validation.message);
    else await ctx.events.warning(repository, 'NotReady', 'Validate', validation.message);
  }
  if (validation.phase !== 'Ready') return { requeueAfterMs: ctx.periods.repositoryCheckMs };
  const untilSync = await syncIfDue(ctx, repository);
  const fresh = ctx.caches.repositories.get(name, ctx.namespace) ?? repository;
  const maintenance = await maintain(ctx, fresh);
  await writeRepositoryStatus(ctx, fresh, maintenance.change);
  return { requeueAfterMs: Math.min(ctx.periods.repositoryCheckMs, untilSync, maintenance.requeueAfterMs ?? Infinity) };
}

/** Lists the backup sets when syncPeriod has passed since the last time; returns the time until the next. */
async function syncIfDue(ctx: ControllerContext, repository: BackupRepository): Promise<number> {
  const period = parseDuration(repository.spec.syncPeriod ?? '1h', 'spec.syncPeriod');
  const since = ctx.now().getTime() - (Date.parse(repository.status?.lastSyncTime ?? '') || 0);
  if (since < period) return period - since;
  const syncedAt = ctx.now().toISOString();
  const labels = { repository: repository.metadata.name ?? '' };
  const { created, removed, snapshots } = await ctx.metrics.sync.time(labels, () => syncBackupSets(ctx, repository));
  ctx.metrics.syncedSnapshots.inc(labels, snapshots);
  ctx.metrics.syncRemovedBackupSets.inc(labels, removed.length);
  const fresh = ctx.caches.repositories.get(repository.metadata.name ?? '', ctx.namespace) ?? repository;
  await writeRepositoryStatus(ctx, fresh, { lastSyncTime: syncedAt });
  if (created.length + removed.length > 0) {
    await ctx.events.normal(repository, 'Synced', 'Sync', `Backup sets from the repository: ${created.length} added, ${removed.length} removed (snapshots gone).`);
  }
  return period;
}

/** Opens the repository (shared with sync and retention) and lists its snapshots, which proves storage access. */
async function validate(ctx: ControllerContext, name: string): Promise<Validation> {
  try {
    const acquired = await ctx.repositories.acquire(name);
    try {
      const count = (await acquired.repo.listSnapshotIds()).length;
      return { phase: 'Ready', message: `The repository opens; it holds ${count} snapshots.` };
    } finally {
      await acquired.release();
    }
  } catch (err) {
    if (err instanceof RepositoryAccessError) return { phase: 'NotReady', message: err.message };
    // Storage errors (refused credentials, an unreachable endpoint) carry the engine's ARCA_ codes.
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('ARCA_')) return { phase: 'NotReady', message: `The repository cannot be read: ${err instanceof Error ? err.message : String(err)}` };
    throw err;
  }
}

/** Merges `change` into the status; writes nothing when nothing changes. */
export async function writeRepositoryStatus(ctx: ControllerContext, repository: BackupRepository, change: Status): Promise<void> {
  const merge = (status: Status): Status => JSON.parse(JSON.stringify({ ...status, ...change })) as Status;
  const current = repository.status ?? {};
  if (JSON.stringify(merge(current)) === JSON.stringify(current)) return;
  await updateStatus(ctx.clients.repositories, repository, merge);
}
