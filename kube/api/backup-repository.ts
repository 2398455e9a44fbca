import Type from 'typebox';
import { Condition, Cron, Duration, Name, SecretKeyReference, SecretReference, StringEnum, TimeZone, Timestamp } from './fields.ts';

export const BackupRepositorySpec = Type.Object({
  url: Type.String({ minLength: 1, description: 'Repository URL as for `arca --repo`: /path, s3://bucket/prefix, azure://container/prefix, gs://bucket/prefix.' }),
  passwordSecretRef: SecretKeyReference('The key in a Secret of the controller namespace that holds the repository password.'),
  credentialsSecretRef: Type.Optional(SecretReference('A Secret whose keys are passed as environment to the storage client (AWS_ACCESS_KEY_ID, AZURE_STORAGE_CONNECTION_STRING, ...).')),
  s3: Type.Optional(Type.Object({
    endpoint: Type.Optional(Type.String({ minLength: 1, description: 'Endpoint of an S3-compatible server.' })),
    region: Type.Optional(Type.String({ minLength: 1 })),
    forcePathStyle: Type.Optional(Type.Boolean()),
  }, { description: 'Options for s3:// repositories.' })),
  readOnly: Type.Optional(Type.Boolean({ description: 'Nothing in this cluster writes to the repository: backups are refused, restores and sync still work.' })),
  syncPeriod: Type.Optional(Duration('How often the controller lists backup sets in the repository (default 1h).')),
  maintenance: Type.Optional(Type.Object({
    schedule: Cron('When prune and check run.'),
    timeZone: Type.Optional(TimeZone()),
    checkReadDataSubset: Type.Optional(Type.String({ pattern: '^((100(\\.0+)?|[1-9][0-9]?(\\.[0-9]+)?|0\\.[0-9]*[1-9][0-9]*)%|[1-9][0-9]*/[1-9][0-9]*)$', description: 'Part of the pack data that `check` reads: N% (0 < N <= 100) or N/M (1 <= N <= M).' })),
    pruneMaxUnusedPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Unused space tolerated before prune repacks.' })),
    paused: Type.Optional(Type.Boolean()),
  }, { description: 'Periodic prune and check, run as Kubernetes Jobs (inside the controller for a local-path repository, which a Job could not reach).' })),
});

export const BackupRepositoryStatus = Type.Object({
  phase: Type.Optional(StringEnum(['Ready', 'NotReady'], { description: 'Whether the repository opens with its Secrets.' })),
  message: Type.Optional(Type.String()),
  lastValidationTime: Type.Optional(Timestamp('When the repository was last opened successfully or not.')),
  lastSyncTime: Type.Optional(Timestamp('When backup sets were last listed from the repository.')),
  lastMaintenanceTime: Type.Optional(Timestamp('When prune and check last finished.')),
  lastMaintenanceJob: Type.Optional(Name('The last maintenance run: a Job, or for a local-path repository a run inside the controller, named alike.')),
  conditions: Type.Optional(Type.Array(Condition)),
});
