/**
 * The agent's data path, behind two calls (Velero's RunBackup/RunRestore in spirit): the
 * reconcilers hand over a checked volume directory and get a typed outcome; they never touch
 * files or repository internals, and this module knows nothing of Kubernetes objects.
 */
import { backupVolume, restoreSnapshot, type BackupOutcome, type ItemError, type Logger, type Progress, type Repository, type RestoreOutcome } from '../engine/index.ts';
import path from 'node:path';
import { MARKER_DIR } from '../kube/api/restore-markers.ts';
import { VolumeJobError } from './errors.ts';
import { clearRestoreMarkers, markerDir, markRestored, markRestoreFailed } from './restore-markers.ts';
import { SNAPSHOT_LABELS, snapshotLabels, volumeIdentityLabels, type VolumeSnapshotMetadata } from '../repository-access/snapshot-labels.ts';

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
  /**
   * The job ran before (an agent or API server failure may have come between its snapshot and its
   * final status): a snapshot labelled with metadata.podVolumeBackupUid is taken, not made again.
   */
  readonly rerun?: boolean | undefined;
}

export interface PodVolumeBackupResult {
  readonly outcome: BackupOutcome;
  /** The first UNREADABLE_LISTED files or directories that could not be read (none listed for a saved snapshot). */
  readonly unreadable: readonly ItemError[];
  /** The snapshot was saved by an earlier run of the job; no backup ran (outcome.durationSeconds is 0). */
  readonly saved: boolean;
}

/**
 * Backs up the volume into a snapshot labelled with its metadata, with the volume's directory as
 * the snapshot's root (its path, under the pod's UID, is only recorded): the parent is the newest
 * snapshot of the same volume (repository-access/snapshot-labels' identity), and its trees serve
 * wherever and in whichever pod it was taken, so a rescheduled pod's unchanged files are not read
 * again. The snapshot's host is the node. The agent's markers (`.arca`) are not the app's data.
 */
export async function backupPodVolume(request: PodVolumeBackupRequest): Promise<PodVolumeBackupResult> {
  const uid = request.metadata.podVolumeBackupUid;
  if (request.rerun === true && uid !== undefined) {
    const saved = (await request.repo.listSnapshots({ labels: { [SNAPSHOT_LABELS.podVolumeBackupUid]: uid } }))[0];
    // The archiver always writes the summary; a snapshot without one is not this agent's.
    if (saved?.snapshot.summary !== undefined) {
      request.logger.info({ snapshot: saved.id }, 'the job\'s snapshot was saved by an earlier run; not backing up again');
      return { outcome: { status: 'completed', snapshotId: saved.id, snapshot: saved.snapshot, summary: saved.snapshot.summary, durationSeconds: 0 }, unreadable: [], saved: true };
    }
  }
  const unreadable: ItemError[] = [];
  const outcome = await backupVolume(request.repo, request.volumeDir, {
    asRoot: true,
    excludes: [path.join(request.volumeDir, MARKER_DIR)],
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
  return { outcome, unreadable, saved: false };
}

export interface PodVolumeRestoreRequest extends DataPathRequest {
  readonly snapshotId: string;
  readonly restoreUid: string;
}

/**
 * Restores the snapshot straight into the volume (the engine's restore goes through directory
 * handles, so nothing lands outside it whatever the snapshot or the volume holds), then writes the
 * done marker; if the restore fails, is cancelled or leaves files out, the failed marker with the
 * reason, so the pod's init container never waits in vain and never takes a half-done volume for
 * a restored one. The snapshot's own `.arca`, if any, is left out: a marker in it must not count.
 */
export async function restorePodVolume(request: PodVolumeRestoreRequest): Promise<RestoreOutcome> {
  const { repo, volumeDir, restoreUid } = request;
  try {
    await clearRestoreMarkers(volumeDir, restoreUid);
    // Made before the restore: the markers written after it then leave the volume's restored times alone.
    await markerDir(volumeDir);
    const stored = await repo.resolveSnapshot(request.snapshotId);
    if (stored.snapshot.root === undefined) {
      throw new VolumeJobError('ARCA_AGENT_NOT_A_VOLUME', `Snapshot ${stored.id.slice(0, 8)} is not of one volume (its tree holds the paths ${stored.snapshot.paths.join(', ')} from /, not a directory's contents); a volume restore needs a snapshot the agent took.`);
    }
    const outcome = await restoreSnapshot(repo, stored, volumeDir, {
      excludes: [`/${MARKER_DIR}`],
      signal: request.signal,
      logger: request.logger,
      workers: request.workers,
      reporter: { progress: request.onProgress },
    });
    if (outcome.status === 'canceled') {
      await markRestoreFailed(volumeDir, restoreUid, 'The restore was canceled; the volume holds part of the snapshot.');
    } else if (outcome.summary.errors > 0) {
      await markRestoreFailed(volumeDir, restoreUid, `${outcome.summary.errors} files or directories of snapshot ${stored.id.slice(0, 8)} could not be restored; see the agent's log.`);
    } else {
      await markRestored(volumeDir, restoreUid);
    }
    return outcome;
  } catch (err) {
    await markRestoreFailed(volumeDir, restoreUid, err instanceof Error ? err.message : String(err)).catch((markErr: unknown) => {
      request.logger.warn({ err: markErr instanceof Error ? markErr.message : String(markErr) }, 'could not write the failed marker');
    });
    throw err;
  }
}
