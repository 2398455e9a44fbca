// VolumeBackups and PodVolumeBackups stand for snapshots: once those are forgotten (retention,
// prune, another cluster's forget), the objects go too, so no restore is offered from nothing.
import type { PodVolumeBackup, VolumeBackup } from '../../kube/api/kinds.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import type { ControllerContext } from '../context.ts';

const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

/** What a repository holds, as listed at `listedAt` (less what was forgotten since). */
export interface RepositoryContents {
  snapshots: ReadonlySet<string>;
  /** The backup-set labels of those snapshots. */
  sets: ReadonlySet<string>;
  listedAt: number;
}

async function ignoringGone(remove: () => Promise<void>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
}

/** Finished before the listing: what it stands for was written before, so its absence means forgotten. */
function finishedBefore(object: PodVolumeBackup | VolumeBackup, listedAt: number): boolean {
  return (Date.parse(object.status?.completionTimestamp ?? '') || Infinity) < listedAt;
}

/**
 * Deletes the PodVolumeBackups of `repository` whose snapshot is not in it, and the finished
 * VolumeBackups that stored snapshots of which none is left (judged by the snapshots' backup-set
 * labels, so it does not depend on which PodVolumeBackups the cache shows yet). Returns the
 * VolumeBackups deleted.
 */
export async function removeForgottenObjects(ctx: ControllerContext, repository: string, contents: RepositoryContents): Promise<string[]> {
  const removed: string[] = [];
  for (const backup of ctx.caches.backups.cached()) {
    const name = backup.metadata.name ?? '';
    const stored = (backup.status?.volumes?.completed ?? 0) + (backup.status?.volumes?.partiallyFailed ?? 0);
    if (backup.spec.repository !== repository || !FINAL.has(backup.status?.phase ?? '') || backup.metadata.deletionTimestamp !== undefined) continue;
    if (stored === 0 || contents.sets.has(name) || !finishedBefore(backup, contents.listedAt)) continue;
    await ignoringGone(() => ctx.clients.backups.delete(ctx.namespace, name));
    removed.push(name);
  }
  for (const p of ctx.caches.podVolumeBackups.cached()) {
    const id = p.status?.snapshotID;
    if (p.spec.repository !== repository || id === undefined || contents.snapshots.has(id) || !finishedBefore(p, contents.listedAt)) continue;
    await ignoringGone(() => ctx.clients.podVolumeBackups.delete(ctx.namespace, p.metadata.name ?? ''));
  }
  if (removed.length > 0) ctx.log.info({ repository, backups: removed }, 'removed backup sets whose snapshots are forgotten');
  return removed;
}
