// VolumeBackups and PodVolumeBackups stand for snapshots: once those are forgotten (retention,
// prune, another cluster's forget), the objects go too, so no restore is offered from nothing.
import type { PodVolumeBackup, VolumeBackup } from '../../kube/api/kinds.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import type { ControllerContext } from '../context.ts';

const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

async function ignoringGone(remove: () => Promise<void>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
}

/**
 * Deletes the PodVolumeBackups of `repository` whose snapshot `isGone`, and each finished
 * VolumeBackup that had snapshots, all of them gone. Returns the VolumeBackups deleted.
 */
export async function removeForgottenObjects(ctx: ControllerContext, repository: string, isGone: (pvb: PodVolumeBackup) => boolean): Promise<string[]> {
  const pvbs = ctx.caches.podVolumeBackups.cached().filter((p) => p.spec.repository === repository);
  const bySet = new Map<string, PodVolumeBackup[]>();
  for (const p of pvbs) bySet.set(p.spec.backupSet, [...(bySet.get(p.spec.backupSet) ?? []), p]);
  const removed: string[] = [];
  for (const backup of ctx.caches.backups.cached()) {
    if (!isFinishedSetOf(backup, repository)) continue;
    const withSnapshots = (bySet.get(backup.metadata.name ?? '') ?? []).filter((p) => p.status?.snapshotID !== undefined);
    if (withSnapshots.length === 0 || !withSnapshots.every(isGone)) continue;
    await ignoringGone(() => ctx.clients.backups.delete(ctx.namespace, backup.metadata.name ?? ''));
    removed.push(backup.metadata.name ?? '');
  }
  for (const p of pvbs) {
    if (p.status?.snapshotID === undefined || !isGone(p)) continue;
    await ignoringGone(() => ctx.clients.podVolumeBackups.delete(ctx.namespace, p.metadata.name ?? ''));
  }
  if (removed.length > 0) ctx.log.info({ repository, backups: removed }, 'removed backup sets whose snapshots are forgotten');
  return removed;
}

function isFinishedSetOf(backup: VolumeBackup, repository: string): boolean {
  return backup.spec.repository === repository && FINAL.has(backup.status?.phase ?? '') && backup.metadata.deletionTimestamp === undefined;
}
