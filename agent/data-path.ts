/**
 * The agent's data path, behind two calls (Velero's RunBackup/RunRestore in spirit): the
 * reconcilers hand over a checked volume directory and get a typed outcome; they never touch
 * files or repository internals, and this module knows nothing of Kubernetes objects.
 */
import { backupVolume, restoreSnapshot, type BackupOutcome, type ItemError, type Logger, type Progress, type Repository, type RestoreOutcome } from '../engine/index.ts';
import { clearRestoreMarkers, markRestored, markRestoreFailed } from './restore-markers.ts';
import { makeStagingDir, moveIntoVolume, removeStagingDir, stagedVolumeDir } from './restore-staging.ts';
import { snapshotLabels, volumeIdentityLabels, type VolumeSnapshotMetadata } from '../repository-access/snapshot-labels.ts';

/** How many unreadable files a status lists (the count covers all). */
export const UNREADABLE_LISTED = 20;

interface DataPathRequest {
  readonly repo: Repository;
  /** Checked by findVolumeDir. */
  readonly volumeDir: string;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly onProgress: (progress: Progress) => void;
  /** Worker threads for this job (the node's cores shared among its concurrent jobs). */
  readonly workers?: number | undefined;
}

export interface PodVolumeBackupRequest extends DataPathRequest {
  readonly metadata: VolumeSnapshotMetadata;
  readonly tags: readonly string[];
}

export interface PodVolumeBackupResult {
  readonly outcome: BackupOutcome;
  /** The first UNREADABLE_LISTED files or directories that could not be read. */
  readonly unreadable: readonly ItemError[];
}

/**
 * Backs up the volume into a snapshot labelled with its metadata; the parent is the newest
 * snapshot of the same volume (repository-access/snapshot-labels' identity), wherever and in whichever pod it
 * was taken. The snapshot's host is the node.
 */
export async function backupPodVolume(request: PodVolumeBackupRequest): Promise<PodVolumeBackupResult> {
  const unreadable: ItemError[] = [];
  const outcome = await backupVolume(request.repo, request.volumeDir, {
    host: request.metadata.node,
    tags: request.tags,
    labels: snapshotLabels(request.metadata),
    parent: { kind: 'latest', filter: { labels: volumeIdentityLabels(request.metadata) }, samePaths: false },
    countTotals: true,
    reporter: {
      progress: request.onProgress,
      error: (item) => { if (unreadable.length < UNREADABLE_LISTED) unreadable.push(item); },
    },
    signal: request.signal,
    logger: request.logger,
    workers: request.workers,
  });
  return { outcome, unreadable };
}

export interface PodVolumeRestoreRequest extends DataPathRequest {
  readonly snapshotId: string;
  readonly restoreUid: string;
}

/**
 * Restores the snapshot into the volume (through a staging directory inside it, see
 * restore-staging.ts), then writes the done marker; if the restore fails, is cancelled or leaves
 * files out, the failed marker with the reason, so the pod's init container never waits in vain.
 */
export async function restorePodVolume(request: PodVolumeRestoreRequest): Promise<RestoreOutcome> {
  const { repo, volumeDir, restoreUid } = request;
  await clearRestoreMarkers(volumeDir, restoreUid);
  const staging = await makeStagingDir(volumeDir, restoreUid);
  try {
    const stored = await repo.resolveSnapshot(request.snapshotId);
    const outcome = await restoreSnapshot(repo, stored, staging, {
      signal: request.signal,
      logger: request.logger,
      workers: request.workers,
      reporter: { progress: request.onProgress },
    });
    if (outcome.status === 'canceled') {
      await markRestoreFailed(volumeDir, restoreUid, 'The restore was canceled.');
    } else if (outcome.summary.errors > 0) {
      await markRestoreFailed(volumeDir, restoreUid, `${outcome.summary.errors} files or directories of snapshot ${stored.id.slice(0, 8)} could not be restored; see the agent's log.`);
    } else {
      await moveIntoVolume(await stagedVolumeDir(staging, stored.snapshot.paths, stored.id), volumeDir);
      // Gone before the done marker: restore-wait then removes an empty .arca, and the app never
      // starts beside our leftovers.
      await removeStagingDir(staging);
      await markRestored(volumeDir, restoreUid);
    }
    return outcome;
  } catch (err) {
    await markRestoreFailed(volumeDir, restoreUid, err instanceof Error ? err.message : String(err)).catch((markErr: unknown) => {
      request.logger.warn({ err: markErr instanceof Error ? markErr.message : String(markErr) }, 'could not write the failed marker');
    });
    throw err;
  } finally {
    await removeStagingDir(staging);
  }
}
