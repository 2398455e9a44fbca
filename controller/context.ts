// What every reconciler works with: the watch caches (read), the clients (write), Events, logs.
import type { BatchV1Api, CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type {
  BackupRepository, BackupRepositoryKind, PodVolumeBackup, PodVolumeBackupKind, PodVolumeRestore, PodVolumeRestoreKind,
  VolumeBackup, VolumeBackupKind, VolumeBackupSchedule, VolumeBackupScheduleKind, VolumeRestore, VolumeRestoreKind,
} from '../kube/api/kinds.ts';
import { httpStatusOf } from '../kube/errors.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Logger } from '../kube/logger.ts';
import type { ResourceClient } from '../kube/resources.ts';
import type { Watcher } from '../kube/watcher.ts';
import type { RepositoryPool } from '../repository-access/pool.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { LocalMaintenance } from './repository/local-maintenance.ts';
import type { MaintenanceJobSettings } from './repository/maintenance-job.ts';

export interface Caches {
  repositories: Watcher<BackupRepository>;
  schedules: Watcher<VolumeBackupSchedule>;
  backups: Watcher<VolumeBackup>;
  podVolumeBackups: Watcher<PodVolumeBackup>;
  restores: Watcher<VolumeRestore>;
  podVolumeRestores: Watcher<PodVolumeRestore>;
  /** Pods the restore webhook marked (label arca.dev/restore), in every namespace. */
  restorePods: Watcher<V1Pod>;
}

export interface Clients {
  repositories: ResourceClient<typeof BackupRepositoryKind>;
  schedules: ResourceClient<typeof VolumeBackupScheduleKind>;
  backups: ResourceClient<typeof VolumeBackupKind>;
  podVolumeBackups: ResourceClient<typeof PodVolumeBackupKind>;
  restores: ResourceClient<typeof VolumeRestoreKind>;
  podVolumeRestores: ResourceClient<typeof PodVolumeRestoreKind>;
  core: CoreV1Api;
  batch: BatchV1Api;
}

export interface ControllerContext {
  /** Where the Arca objects, Secrets and Lease live. */
  namespace: string;
  caches: Caches;
  clients: Clients;
  events: EventRecorder;
  log: Logger;
  now: () => Date;
  /** Repositories opened with their Secrets, shared by the checks, sync, retention and deleteSnapshots. */
  repositories: RepositoryPool;
  periods: ControllerPeriods;
  maintenance: MaintenanceJobSettings;
  /** Maintenance runs of local-path repositories, inside this process. */
  localMaintenance: LocalMaintenance;
  metrics: ControllerMetrics;
}

export interface ControllerPeriods {
  /** How often a BackupRepository is opened again to check it (a Secret change checks it at once). */
  repositoryCheckMs: number;
}

/** Final phases of the per-volume objects. */
export const FINAL_POD_VOLUME_PHASES: ReadonlySet<string> = new Set(['Completed', 'PartiallyFailed', 'Failed', 'Canceled']);

/** Creates an object whose name is derived from what it stands for; one that exists already is fine. */
export async function createIfMissing(create: () => Promise<unknown>): Promise<boolean> {
  try {
    await create();
    return true;
  } catch (err) {
    if (httpStatusOf(err) === 409) return false;
    throw err;
  }
}

/** Sets spec.cancel on each per-volume object not yet final: its agent stops the job. */
export async function cancelPodVolumes<K extends typeof PodVolumeBackupKind | typeof PodVolumeRestoreKind>(
  client: ResourceClient<K>, namespace: string, objects: readonly (PodVolumeBackup | PodVolumeRestore)[],
): Promise<void> {
  for (const object of objects) {
    if (object.spec.cancel === true || FINAL_POD_VOLUME_PHASES.has(object.status?.phase ?? '') || object.metadata.name === undefined) continue;
    await client.mergePatch(namespace, object.metadata.name, { spec: { cancel: true } });
  }
}
