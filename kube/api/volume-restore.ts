import Type from 'typebox';
import { LabelSelector, Name, StringEnum, StringMap, Timestamp, VolumeCounts } from './fields.ts';

export const VolumeRestoreSpec = Type.Object({
  volumeBackup: Name('The VolumeBackup (backup set) to restore from.'),
  repository: Type.Optional(Name('The BackupRepository; default: the one the VolumeBackup used.')),
  includedNamespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Source namespaces to restore; empty or absent means all in the backup set.' })),
  excludedNamespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  namespaceMapping: Type.Optional(StringMap({ description: 'Source namespace to target namespace.' })),
  labelSelector: Type.Optional(LabelSelector),
  cancel: Type.Optional(Type.Boolean({ description: 'Stop the restore: pending volumes get failed markers, so their pods do not wait forever.' })),
});

export const VolumeRestoreStatus = Type.Object({
  phase: Type.Optional(StringEnum(['New', 'InProgress', 'Completed', 'PartiallyFailed', 'Failed'])),
  message: Type.Optional(Type.String()),
  targetNamespaces: Type.Optional(Type.Array(Type.String(), { description: 'Namespaces labelled for the restore webhook.' })),
  volumes: Type.Optional(VolumeCounts),
  startTimestamp: Type.Optional(Timestamp('When the restore started.')),
  completionTimestamp: Type.Optional(Timestamp('When the restore reached a final phase.')),
});
