import Type from 'typebox';
import { Count, Name } from './fields.ts';
import { podVolume, podVolumeProgress } from './pod-volume-backup.ts';

export const PodVolumeRestoreSpec = Type.Object({
  ...podVolume,
  snapshotID: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The snapshot to restore.' }),
  restoreUID: Type.String({ minLength: 1, description: 'Name of the done marker <volume>/.arca/<restoreUID> the init container waits for.' }),
  volumeRestore: Type.Optional(Name('The VolumeRestore this belongs to.')),
});

export const PodVolumeRestoreStatus = Type.Object({
  ...podVolumeProgress,
  stats: Type.Optional(Type.Object({
    filesRestored: Count('Files written.'),
    bytesRestored: Count('Bytes written.'),
    durationSeconds: Type.Optional(Type.Number({ minimum: 0 })),
  })),
});
