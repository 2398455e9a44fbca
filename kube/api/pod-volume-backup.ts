import Type from 'typebox';
import { Count, Name, PodReference, Progress, StringEnum, Timestamp, WorkloadReference } from './fields.ts';

/** Phases of the per-volume objects the agent works on (PodVolumeBackup, PodVolumeRestore). */
export const POD_VOLUME_PHASES = ['New', 'Accepted', 'InProgress', 'Completed', 'PartiallyFailed', 'Failed', 'Canceled'] as const;
export const PodVolumePhase = StringEnum([...POD_VOLUME_PHASES], {
  description: 'New, Accepted (taken by the node agent), InProgress, then Completed, PartiallyFailed (done, but some files could not be read), Failed or Canceled.',
});

/** What the agent needs to find a pod volume, shared by backups and restores. */
export const podVolume = {
  node: Name('Node whose agent handles this object (also the arca.dev/node label).'),
  pod: PodReference,
  volume: Name('Volume name in the pod spec.'),
  repository: Name('The BackupRepository (in the controller namespace).'),
  cancel: Type.Optional(Type.Boolean({ description: 'Stop the job; the phase ends Canceled.' })),
};

/** Fields written by the agent, shared by backups and restores. */
export const podVolumeProgress = {
  phase: Type.Optional(PodVolumePhase),
  message: Type.Optional(Type.String({ description: 'Why the object failed, or what it is waiting for.' })),
  progress: Type.Optional(Progress),
  attempts: Type.Optional(Type.Integer({ minimum: 0, description: 'Times the agent started this job (it retries after an agent restart, up to a limit).' })),
  startTimestamp: Type.Optional(Timestamp('When the agent started the job.')),
  completionTimestamp: Type.Optional(Timestamp('When the job reached a final phase.')),
};

export const PodVolumeBackupSpec = Type.Object({
  ...podVolume,
  pvcName: Type.Optional(Name('The PersistentVolumeClaim behind the volume, if any: the parent snapshot is found by it.')),
  ownerWorkload: Type.Optional(WorkloadReference),
  backupSet: Name('The VolumeBackup this volume belongs to.'),
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
});

export const PodVolumeBackupStatus = Type.Object({
  ...podVolumeProgress,
  snapshotID: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The snapshot written.' })),
  parentSnapshotID: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The snapshot this one is incremental to.' })),
  stats: Type.Optional(Type.Object({
    filesNew: Count('Files not in the parent.'),
    filesChanged: Count('Files changed since the parent.'),
    filesUnmodified: Count('Files unchanged since the parent.'),
    dirsNew: Type.Optional(Count('Directories not in the parent.')),
    dataAdded: Count('Bytes stored after dedup and compression.'),
    totalFilesProcessed: Count('Files read.'),
    totalBytesProcessed: Count('Bytes read.'),
    durationSeconds: Type.Optional(Type.Number({ minimum: 0 })),
  })),
  unreadableFiles: Type.Optional(Type.Array(Type.String(), { maxItems: 20, description: 'The first files that could not be read (phase PartiallyFailed).' })),
  unreadableCount: Type.Optional(Count('How many files could not be read.')),
});
