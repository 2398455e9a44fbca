import Type from 'typebox';
import { Count, LabelSelector, Name, StringEnum, Timestamp, VolumeCounts } from './fields.ts';

/** What a backup takes: shared by VolumeBackup and the schedules that create them. */
export const backupSelection = {
  repository: Name('The BackupRepository (in the controller namespace) to write to.'),
  includedNamespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Namespaces to back up; empty or absent means all.' })),
  excludedNamespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Namespaces never backed up.' })),
  labelSelector: Type.Optional(LabelSelector),
  defaultVolumesToBackup: Type.Optional(Type.Boolean({ description: 'Back up every eligible volume unless excluded by backup.arca.dev/backup-volumes-excludes; otherwise only those named by backup.arca.dev/backup-volumes.' })),
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Tags added to every snapshot.' })),
};

export const VolumeBackupSpec = Type.Object({
  ...backupSelection,
  deleteSnapshots: Type.Optional(Type.Boolean({ description: 'Forget the snapshots in the repository when this object is deleted.' })),
  cancel: Type.Optional(Type.Boolean({ description: 'Cancel the backup: running volume jobs stop, the phase ends Failed.' })),
});

export const VOLUME_BACKUP_PHASES = ['New', 'InProgress', 'Completed', 'PartiallyFailed', 'Failed'] as const;

export const VolumeBackupStatus = Type.Object({
  phase: Type.Optional(StringEnum([...VOLUME_BACKUP_PHASES])),
  message: Type.Optional(Type.String()),
  volumes: Type.Optional(VolumeCounts),
  totals: Type.Optional(Type.Object({
    bytesProcessed: Type.Optional(Count('Bytes read from all volumes.')),
    filesProcessed: Type.Optional(Count('Files read from all volumes.')),
    dataAdded: Type.Optional(Count('Bytes stored in the repository after dedup and compression.')),
  })),
  skippedPods: Type.Optional(Type.Array(Type.Object({
    namespace: Type.String(),
    name: Type.String(),
    reason: Type.String({ description: 'Why the pod was not backed up (not running, not scheduled, ...).' }),
  }))),
  startTimestamp: Type.Optional(Timestamp('When the backup started.')),
  completionTimestamp: Type.Optional(Timestamp('When the backup reached a final phase.')),
});
