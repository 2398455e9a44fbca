/**
 * The engine's one door: what every caller (the CLI, the node agent, tests, benchmarks) uses to
 * open a repository and back up, restore or copy. Everything is passed in (no environment), every
 * call can be cancelled, and every outcome is typed.
 */
export { backupVolume, type BackupOutcome, type BackupVolumeOptions, type ParentChoice } from './volume-backup.ts';
export { restoreSnapshot, type RestoreOutcome, type RestoreSnapshotOptions } from './volume-restore.ts';
export { copySnapshots, type CopiedSnapshot, type CopyOutcome, type CopyResult, type CopySnapshotsOptions } from './copy-snapshots.ts';
export { forgetSnapshots } from './forget-snapshots.ts';
export { maintainRepository, type MaintainRepositoryOptions, type MaintenanceOutcome } from './maintain-repository.ts';
export { describeProblem, type CheckReport } from '../repository/check/report.ts';
export type { PruneReport } from '../repository/maintenance/prune.ts';
export { applyPolicy, type PolicyDecision, type RetentionPolicy } from '../repository/maintenance/retention.ts';
export type { RetentionDuration } from '../repository/maintenance/duration.ts';
export { CLEANUP_GRACE_MS, type JobOptions } from './job.ts';
export type { ItemError, Progress, Reporter } from './progress.ts';
export type { RestoreSummary } from './restore/restorer.ts';
export { initRepository, openRepository, type InitRepositoryOptions, type RepositoryOptions } from '../repository/open-repository.ts';
export type { Repository } from '../repository/repository.ts';
export { schemeOf, type BackendOptions } from '../repository/storage/open.ts';
export type { S3Options, S3Credentials } from '../repository/storage/s3.ts';
export type { AzureOptions, AzureCredential } from '../repository/storage/azure.ts';
export type { Logger, LogFields } from '../repository/logger.ts';
export type { BackupSummary, Snapshot, SnapshotFilter, SnapshotLabels, StoredSnapshot } from '../repository/snapshot/snapshot.ts';
export { OperationCanceledError } from '../repository/errors.ts';
