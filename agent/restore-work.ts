/** What a PodVolumeRestore does once its pod is checked: find the volume, restore into it, mark it. */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { PodVolumeRestoreKind } from '../kube/api/kinds.ts';
import { restorePodVolume } from './data-path.ts';
import { locatePodVolume } from './locate-volume.ts';
import type { PodVolumeWork } from './pod-volume-reconciler.ts';
import { markRestoreFailed } from './restore-markers.ts';
import type { RepositoryPool } from '../repository-access/pool.ts';

export interface RestoreWorkOptions {
  readonly core: CoreV1Api;
  readonly podsDir: string;
  readonly repositories: RepositoryPool;
  readonly workers?: number | undefined;
}

export function restoreWork(options: RestoreWorkOptions): PodVolumeWork<typeof PodVolumeRestoreKind> {
  return async ({ object, pod, signal, logger, onProgress }) => {
    const { spec } = object;
    const { dir } = await locatePodVolume(options.core, options.podsDir, pod, spec.volume);
    const acquired = await options.repositories.acquire(spec.repository).catch(async (err: unknown) => {
      // The pod's init container is waiting for this volume: tell it why it will wait in vain.
      await markRestoreFailed(dir, spec.restoreUID, err instanceof Error ? err.message : String(err)).catch(() => undefined);
      throw err;
    });
    try {
      const outcome = await restorePodVolume({
        repo: acquired.repo, volumeDir: dir, snapshotId: spec.snapshotID, restoreUid: spec.restoreUID, signal, logger, onProgress, workers: options.workers,
      });
      const s = outcome.summary;
      const stats = s === undefined ? {} : { stats: { filesRestored: s.files_restored, bytesRestored: s.bytes_restored, durationSeconds: outcome.durationSeconds } };
      if (outcome.status === 'canceled') return { phase: 'Canceled', message: 'Canceled; the volume holds part of the snapshot.', status: stats, bytes: s?.bytes_restored ?? 0 };
      if (outcome.summary.errors > 0) {
        return { phase: 'PartiallyFailed', message: `${outcome.summary.errors} files or directories could not be restored; the pod was told the restore failed.`, status: stats, bytes: outcome.summary.bytes_restored };
      }
      return {
        phase: 'Completed',
        message: `Snapshot ${outcome.snapshotId.slice(0, 8)} restored: ${outcome.summary.files_restored} files, ${outcome.summary.bytes_restored} bytes.`,
        status: { ...stats, progress: { bytesDone: outcome.summary.bytes_restored, bytesTotal: outcome.summary.bytes_restored, percent: 100 } },
        bytes: outcome.summary.bytes_restored,
      };
    } finally {
      await acquired.release();
    }
  };
}
