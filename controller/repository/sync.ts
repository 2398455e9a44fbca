// Sync: the backup sets in a repository (snapshots grouped by their arca.dev/backup-set label)
// become Completed VolumeBackups with their PodVolumeBackups, so a cluster pointed at a repository
// another cluster wrote can restore from it; objects whose snapshots are gone are removed.
import type { StoredSnapshot } from '../../engine/index.ts';
import { API_VERSION, type BackupRepository, type PodVolumeBackup, type VolumeBackup } from '../../kube/api/kinds.ts';
import { updateStatus } from '../../kube/status.ts';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import { metadataFromLabels, type VolumeSnapshotMetadata } from '../../repository-access/snapshot-labels.ts';
import { podVolumeBackupName } from '../backup/backup-plan.ts';
import { removeForgottenObjects } from '../backup/forgotten-objects.ts';
import { createIfMissing, type ControllerContext } from '../context.ts';
import { FINALIZER } from '../finalizer.ts';

/**
 * On objects sync made: the VolumeBackup reconciler never plans them, and their PodVolumeBackups
 * carry no arca.dev/node label, so no agent ever takes them for work to do.
 */
export const SYNCED_LABEL = 'arca.dev/synced';

interface SetVolume {
  meta: VolumeSnapshotMetadata;
  snapshot: StoredSnapshot;
}

export interface SyncResult {
  created: string[];
  removed: string[];
  /** PodVolumeBackups created, one per snapshot. */
  snapshots: number;
}

export async function syncBackupSets(ctx: ControllerContext, repository: BackupRepository): Promise<SyncResult> {
  const name = repository.metadata.name ?? '';
  const listedAt = ctx.now().getTime();
  const acquired = await ctx.repositories.acquire(name);
  let snapshots: StoredSnapshot[];
  try {
    snapshots = await acquired.repo.listSnapshots();
  } finally {
    await acquired.release();
  }
  const sets = new Map<string, SetVolume[]>();
  for (const snapshot of snapshots) {
    const meta = metadataFromLabels(snapshot.snapshot.labels);
    if (meta !== undefined) sets.set(meta.backupSet, [...(sets.get(meta.backupSet) ?? []), { meta, snapshot }]);
  }
  const created: string[] = [];
  let synced = 0;
  for (const [set, volumes] of sets) {
    const existing = ctx.caches.backups.get(set, ctx.namespace);
    // A set this cluster made is its own; a synced one may have grown since (synced while another cluster was still writing it).
    if (existing !== undefined && existing.metadata.labels?.[SYNCED_LABEL] !== 'true') continue;
    const missing = volumes.filter((v) => ctx.caches.podVolumeBackups.get(podVolumeBackupName(set, v.meta.podUid, v.meta.volume), ctx.namespace) === undefined);
    if (existing !== undefined && missing.length === 0) continue;
    const made = await syncBackupSet(ctx, name, set, volumes, missing, existing);
    if (made === undefined) continue;
    if (existing === undefined) created.push(set);
    synced += made;
  }
  const removed = await removeForgottenObjects(ctx, name, { snapshots: new Set(snapshots.map((s) => s.id)), sets: new Set(sets.keys()), listedAt });
  if (created.length > 0) ctx.log.info({ repository: name, backups: created }, 'synced backup sets from the repository');
  return { created, removed, snapshots: synced };
}

/**
 * Makes the VolumeBackup of `set` (unless `existing`) and the PodVolumeBackups of its `missing`
 * volumes; returns how many of those it created, undefined when another writer made the set first.
 */
async function syncBackupSet(
  ctx: ControllerContext, repository: string, set: string, volumes: readonly SetVolume[], missing: readonly SetVolume[], existing: VolumeBackup | undefined,
): Promise<number | undefined> {
  const times = volumes.map((v) => v.snapshot.snapshot.time).sort();
  const labels = { [BACKUP_SET_LABEL]: set, [SYNCED_LABEL]: 'true' };
  let backup = existing;
  if (backup === undefined) {
    try {
      // The finalizer, as a planned backup gets it: deleting it with deleteSnapshots forgets the snapshots.
      backup = await ctx.clients.backups.create(ctx.namespace, { metadata: { name: set, labels, finalizers: [FINALIZER] }, spec: { repository } });
    } catch (err) {
      if (httpStatusOf(err) === 409) return undefined;
      throw err;
    }
  }
  const owner = backup;
  let made = 0;
  for (const { meta, snapshot } of missing) {
    if (await createIfMissing(async () => {
      const pvb = await ctx.clients.podVolumeBackups.create(ctx.namespace, {
        metadata: {
          name: podVolumeBackupName(set, meta.podUid, meta.volume), labels,
          ownerReferences: [{ apiVersion: API_VERSION, kind: 'VolumeBackup', name: set, uid: owner.metadata.uid ?? '', controller: true }],
        },
        spec: {
          node: meta.node, pod: { namespace: meta.namespace, name: meta.pod, uid: meta.podUid }, volume: meta.volume, repository, backupSet: set,
          ...(meta.pvc === undefined ? {} : { pvcName: meta.pvc }),
          ...(meta.workload === undefined ? {} : { ownerWorkload: meta.workload }),
        },
      });
      await ctx.clients.podVolumeBackups.replaceStatus({ ...pvb, status: completedStatus(snapshot) });
    })) made++;
  }
  await updateStatus(ctx.clients.backups, backup, (): NonNullable<VolumeBackup['status']> => ({
    phase: 'Completed', message: `Synced from BackupRepository ${repository}: ${volumes.length} volumes.`,
    volumes: { total: volumes.length, completed: volumes.length },
    startTimestamp: times[0], completionTimestamp: times.at(-1),
  }));
  return made;
}

function completedStatus({ id, snapshot }: StoredSnapshot): NonNullable<PodVolumeBackup['status']> {
  const s = snapshot.summary;
  return {
    phase: 'Completed', snapshotID: id, startTimestamp: snapshot.time, completionTimestamp: snapshot.time,
    ...(snapshot.parent === undefined ? {} : { parentSnapshotID: snapshot.parent }),
    ...(s === undefined ? {} : {
      stats: {
        filesNew: s.files_new, filesChanged: s.files_changed, filesUnmodified: s.files_unmodified, dirsNew: s.dirs_new,
        dataAdded: s.data_added, totalFilesProcessed: s.total_files_processed, totalBytesProcessed: s.total_bytes_processed,
      },
    }),
  };
}
