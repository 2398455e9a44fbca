/** What a PodVolumeBackup does once its pod is checked: find the volume, back it up, report. */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { PodVolumeBackupKind } from '../kube/api/kinds.ts';
import { backupPodVolume } from './data-path.ts';
import { VolumeJobError } from './errors.ts';
import { locatePodVolume } from './locate-volume.ts';
import type { PodVolumeWork } from './pod-volume-reconciler.ts';
import type { RepositoryPool } from '../repository-access/pool.ts';

export interface BackupWorkOptions {
  readonly core: CoreV1Api;
  readonly podsDir: string;
  readonly node: string;
  readonly cluster: string;
  readonly repositories: RepositoryPool;
  readonly workers?: number | undefined;
}

export function backupWork(options: BackupWorkOptions): PodVolumeWork<typeof PodVolumeBackupKind> {
  return async ({ object, pod, signal, logger, onProgress }) => {
    const { spec } = object;
    const { dir, location } = await locatePodVolume(options.core, options.podsDir, pod, spec.volume);
    const acquired = await options.repositories.acquire(spec.repository);
    try {
      if (acquired.definition.repository.spec.readOnly === true) {
        throw new VolumeJobError('ARCA_AGENT_REPOSITORY', `BackupRepository ${spec.repository} is read-only in this cluster; backups to it are refused.`);
      }
      const { outcome, unreadable, saved } = await backupPodVolume({
        repo: acquired.repo, volumeDir: dir, signal, logger, onProgress, workers: options.workers, tags: spec.tags ?? [],
        // The reconciler counts this run in attempts before the work starts.
        rerun: (object.status?.attempts ?? 1) > 1,
        metadata: {
          podVolumeBackupUid: object.metadata.uid,
          cluster: options.cluster, namespace: spec.pod.namespace, pod: spec.pod.name, podUid: spec.pod.uid, volume: spec.volume,
          pvc: spec.pvcName ?? location.claim, workload: spec.ownerWorkload, node: options.node, backupSet: spec.backupSet,
        },
      });
      if (outcome.status === 'canceled') return { phase: 'Canceled', message: 'Canceled; no snapshot was written.', status: {}, bytes: outcome.bytesProcessed };
      const s = outcome.summary;
      const partial = s.files_unreadable > 0;
      const earlier = saved ? ' (by an earlier run of this job)' : '';
      return {
        phase: partial ? 'PartiallyFailed' : 'Completed',
        message: partial
          ? `Snapshot ${outcome.snapshotId.slice(0, 8)} saved${earlier} without ${s.files_unreadable} files that could not be read${saved ? '' : ' (see unreadableFiles)'}.`
          : `Snapshot ${outcome.snapshotId.slice(0, 8)} saved${earlier}: ${s.files_new} new, ${s.files_changed} changed, ${s.files_unmodified} unmodified files, ${s.data_added} bytes added.`,
        status: {
          snapshotID: outcome.snapshotId,
          ...(outcome.snapshot.parent === undefined ? {} : { parentSnapshotID: outcome.snapshot.parent }),
          stats: {
            filesNew: s.files_new, filesChanged: s.files_changed, filesUnmodified: s.files_unmodified, dirsNew: s.dirs_new,
            dataAdded: s.data_added, totalFilesProcessed: s.total_files_processed, totalBytesProcessed: s.total_bytes_processed,
            ...(saved ? {} : { durationSeconds: outcome.durationSeconds }),
          },
          progress: { bytesDone: s.total_bytes_processed, bytesTotal: s.total_bytes_processed, filesDone: s.total_files_processed, filesTotal: s.total_files_processed, percent: 100 },
          ...(partial ? { unreadableFiles: unreadable.map((item) => `${item.path}: ${item.message}`), unreadableCount: s.files_unreadable } : {}),
        },
        bytes: s.total_bytes_processed,
      };
    } finally {
      await acquired.release();
    }
  };
}
