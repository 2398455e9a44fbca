// VolumeBackup: plans the backup set once (PodVolumeBackups on the pods' nodes, skipped pods
// reported), then follows the agents' results to a final phase with counts and totals. Canceling
// or deleting it cancels the volumes still running.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodVolumeBackup, VolumeBackup } from '../../kube/api/kinds.ts';
import { forgetSnapshots } from '../../engine/index.ts';
import { updateStatus } from '../../kube/status.ts';
import { cancelPodVolumes, createIfMissing, FINAL_POD_VOLUME_PHASES, type ControllerContext } from '../context.ts';
import { addFinalizer, removeFinalizer } from '../finalizer.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { SYNCED_LABEL } from '../repository/sync.ts';
import { planBackup } from './backup-plan.ts';

type Status = NonNullable<VolumeBackup['status']>;
const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);
/** The name is the arca.dev/backup-set label of its PodVolumeBackups. */
const MAX_NAME = 63;

export async function reconcileVolumeBackup(ctx: ControllerContext, name: string): Promise<ReconcileResult> {
  const { caches, clients, namespace } = ctx;
  const backup = caches.backups.get(name, namespace);
  if (backup === undefined) return undefined;
  const own = caches.podVolumeBackups.cached().filter((p) => p.spec.backupSet === name);

  if (backup.metadata.deletionTimestamp !== undefined) {
    await cancelPodVolumes(ctx.clients.podVolumeBackups, ctx.namespace, own);
    if (backup.spec.deleteSnapshots === true) await forgetSetSnapshots(ctx, backup, own);
    await removeFinalizer(clients.backups, backup);
    return undefined;
  }
  const phase = backup.status?.phase ?? 'New';
  // Made by sync from snapshots already taken: never planned (sync writes its status).
  if (FINAL.has(phase) || backup.metadata.labels?.[SYNCED_LABEL] !== undefined) return undefined;
  await addFinalizer(clients.backups, backup);
  if (backup.spec.cancel === true) {
    await cancelPodVolumes(ctx.clients.podVolumeBackups, ctx.namespace, own);
    return finish(ctx, backup, { ...tally(own, backup.status?.volumes?.total ?? own.length).status, phase: 'Failed', message: 'Canceled: running volume backups were stopped.' });
  }
  if (phase === 'New') return start(ctx, backup);
  const { done, status } = tally(own, backup.status?.volumes?.total ?? 0);
  if (done) return finish(ctx, backup, status);
  await writeStatus(ctx, backup, status);
  return undefined;
}

async function start(ctx: ControllerContext, backup: VolumeBackup): Promise<ReconcileResult> {
  const name = backup.metadata.name ?? '';
  if (name.length > MAX_NAME) return finish(ctx, backup, { phase: 'Failed', message: `The name is longer than ${MAX_NAME} characters (it labels the volume backups); recreate it with a shorter name.` });
  const repository = ctx.caches.repositories.get(backup.spec.repository, ctx.namespace);
  if (repository === undefined) return finish(ctx, backup, { phase: 'Failed', message: `BackupRepository ${backup.spec.repository} does not exist in ${ctx.namespace}; create it or name an existing one.` });
  if (repository.spec.readOnly === true) return finish(ctx, backup, { phase: 'Failed', message: `BackupRepository ${backup.spec.repository} is read-only in this cluster; back up to a writable repository.` });

  const plan = planBackup(backup, await listPods(ctx, backup));
  for (const pvb of plan.podVolumeBackups) await createIfMissing(() => ctx.clients.podVolumeBackups.create(ctx.namespace, pvb));
  const total = plan.podVolumeBackups.length;
  const skipped = plan.skippedPods.length > 0 ? `; ${plan.skippedPods.length} pods skipped` : '';
  if (total === 0) return finish(ctx, backup, { phase: 'Completed', volumes: { total: 0 }, skippedPods: plan.skippedPods, message: `No volumes selected${skipped}.` });
  await writeStatus(ctx, backup, { phase: 'InProgress', volumes: { total }, skippedPods: plan.skippedPods, message: `Backing up ${total} volumes${skipped}.` });
  await ctx.events.normal(backup, 'Started', 'Backup', `Backing up ${total} volumes${skipped}.`);
  return undefined;
}

/** deleteSnapshots: the set's snapshots are forgotten before the object goes (never in a read-only repository). */
async function forgetSetSnapshots(ctx: ControllerContext, backup: VolumeBackup, own: readonly PodVolumeBackup[]): Promise<void> {
  const ids = own.flatMap((p) => p.status?.snapshotID ?? []);
  const repository = ctx.caches.repositories.get(backup.spec.repository, ctx.namespace);
  if (ids.length === 0 || repository === undefined || repository.spec.readOnly === true) return;
  const acquired = await ctx.repositories.acquire(backup.spec.repository);
  try {
    await forgetSnapshots(acquired.repo, ids);
  } finally {
    await acquired.release();
  }
  await ctx.events.normal(backup, 'SnapshotsForgotten', 'Delete', `Forgot ${ids.length} snapshots in BackupRepository ${backup.spec.repository}.`);
}

async function listPods(ctx: ControllerContext, backup: VolumeBackup): Promise<V1Pod[]> {
  const included = backup.spec.includedNamespaces ?? [];
  if (included.length === 0) return (await ctx.clients.core.listPodForAllNamespaces()).items;
  const lists = await Promise.all(included.map((namespace) => ctx.clients.core.listNamespacedPod({ namespace })));
  return lists.flatMap((l) => l.items);
}

/** Counts and totals of the set's volumes; done when `total` of them reached a final phase. */
function tally(pvbs: readonly PodVolumeBackup[], total: number): { done: boolean; status: Status } {
  const count = (phase: string) => pvbs.filter((p) => p.status?.phase === phase).length;
  const completed = count('Completed');
  const partiallyFailed = count('PartiallyFailed');
  const failed = count('Failed');
  const canceled = count('Canceled');
  const final = pvbs.filter((p) => FINAL_POD_VOLUME_PHASES.has(p.status?.phase ?? '')).length;
  const sum = (pick: (p: PodVolumeBackup) => number | undefined) => pvbs.reduce((s, p) => s + (pick(p) ?? 0), 0);
  const totals = {
    bytesProcessed: sum((p) => p.status?.stats?.totalBytesProcessed),
    filesProcessed: sum((p) => p.status?.stats?.totalFilesProcessed),
    dataAdded: sum((p) => p.status?.stats?.dataAdded),
  };
  const volumes = { total, completed, partiallyFailed, failed, canceled };
  const done = pvbs.length >= total && final >= total;
  if (!done) return { done, status: { phase: 'InProgress', volumes, totals } };
  const phase = completed === total ? 'Completed' : completed + partiallyFailed > 0 ? 'PartiallyFailed' : 'Failed';
  const problems = [failed > 0 ? `${failed} failed` : '', canceled > 0 ? `${canceled} canceled` : '', partiallyFailed > 0 ? `${partiallyFailed} with unreadable files` : ''].filter((p) => p !== '');
  return { done, status: { phase, volumes, totals, message: `${completed} of ${total} volumes backed up${problems.length > 0 ? `; ${problems.join(', ')}` : ''}.` } };
}

async function writeStatus(ctx: ControllerContext, backup: VolumeBackup, change: Status): Promise<void> {
  const current = backup.status ?? {};
  const startTimestamp = current.startTimestamp ?? ctx.now().toISOString();
  if (JSON.stringify({ ...current, ...change, startTimestamp }) === JSON.stringify(current)) return;
  await updateStatus(ctx.clients.backups, backup, (status) => ({ ...status, ...change, startTimestamp: status.startTimestamp ?? startTimestamp }));
}

async function finish(ctx: ControllerContext, backup: VolumeBackup, status: Status): Promise<ReconcileResult> {
  await writeStatus(ctx, backup, { ...status, completionTimestamp: ctx.now().toISOString() });
  const note = status.message ?? status.phase ?? '';
  if (status.phase === 'Completed') await ctx.events.normal(backup, 'Completed', 'Backup', note);
  else await ctx.events.warning(backup, status.phase ?? 'Failed', 'Backup', note);
  return undefined;
}
