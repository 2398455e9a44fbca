// The six arca.dev kinds: names, schemas and printer columns, the one source of the CRDs
// (crds.ts) and of run-time validation (validate.ts).
import type { TObject } from 'typebox';
import type { Static } from './fields.ts';
import { BackupRepositorySpec, BackupRepositoryStatus } from './backup-repository.ts';
import { PodVolumeBackupSpec, PodVolumeBackupStatus } from './pod-volume-backup.ts';
import { PodVolumeRestoreSpec, PodVolumeRestoreStatus } from './pod-volume-restore.ts';
import { VolumeBackupScheduleSpec, VolumeBackupScheduleStatus } from './volume-backup-schedule.ts';
import { VolumeBackupSpec, VolumeBackupStatus } from './volume-backup.ts';
import { VolumeRestoreSpec, VolumeRestoreStatus } from './volume-restore.ts';

export const GROUP = 'arca.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 0: always shown; 1: only with `-o wide`. */
  priority?: number;
}

export interface KindDefinition<Spec extends TObject = TObject, Status extends TObject = TObject> {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: Spec;
  status: Status;
  printerColumns: PrinterColumn[];
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const phase: PrinterColumn = { name: 'Phase', type: 'string', jsonPath: '.status.phase' };
const podVolumeColumns: PrinterColumn[] = [
  phase,
  { name: 'Node', type: 'string', jsonPath: '.spec.node' },
  { name: 'Pod', type: 'string', jsonPath: '.spec.pod.name' },
  { name: 'Volume', type: 'string', jsonPath: '.spec.volume' },
  { name: 'Progress', type: 'integer', jsonPath: '.status.progress.percent', description: 'Percent of the bytes done.' },
  { name: 'Bytes Done', type: 'integer', jsonPath: '.status.progress.bytesDone', priority: 1 },
  { name: 'Bytes Total', type: 'integer', jsonPath: '.status.progress.bytesTotal', priority: 1 },
  { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
  age,
];
const volumeCountColumns: PrinterColumn[] = [
  { name: 'Volumes', type: 'integer', jsonPath: '.status.volumes.total' },
  { name: 'Completed', type: 'integer', jsonPath: '.status.volumes.completed' },
  { name: 'Failed', type: 'integer', jsonPath: '.status.volumes.failed' },
];

export const BackupRepositoryKind = {
  kind: 'BackupRepository' as const, plural: 'backuprepositories', singular: 'backuprepository', shortNames: ['arcarepo'],
  description: 'A repository that backups go to and restores come from, with the Secrets that open it.',
  spec: BackupRepositorySpec, status: BackupRepositoryStatus,
  printerColumns: [
    phase,
    { name: 'URL', type: 'string', jsonPath: '.spec.url' },
    { name: 'Read Only', type: 'boolean', jsonPath: '.spec.readOnly', priority: 1 },
    { name: 'Last Sync', type: 'date', jsonPath: '.status.lastSyncTime', priority: 1 },
    age,
  ],
} satisfies KindDefinition;

export const VolumeBackupScheduleKind = {
  kind: 'VolumeBackupSchedule' as const, plural: 'volumebackupschedules', singular: 'volumebackupschedule', shortNames: ['vbs'],
  description: 'Creates VolumeBackups on a cron schedule and applies a retention policy after each.',
  spec: VolumeBackupScheduleSpec, status: VolumeBackupScheduleStatus,
  printerColumns: [
    { name: 'Schedule', type: 'string', jsonPath: '.spec.schedule' },
    { name: 'Repository', type: 'string', jsonPath: '.spec.repository' },
    { name: 'Paused', type: 'boolean', jsonPath: '.spec.paused' },
    { name: 'Last Backup', type: 'date', jsonPath: '.status.lastScheduleTime' },
    age,
  ],
} satisfies KindDefinition;

export const VolumeBackupKind = {
  kind: 'VolumeBackup' as const, plural: 'volumebackups', singular: 'volumebackup', shortNames: ['vb'],
  description: 'A backup set: the selected pod volumes, one PodVolumeBackup each.',
  spec: VolumeBackupSpec, status: VolumeBackupStatus,
  printerColumns: [phase, { name: 'Repository', type: 'string', jsonPath: '.spec.repository' }, ...volumeCountColumns, age],
} satisfies KindDefinition;

export const PodVolumeBackupKind = {
  kind: 'PodVolumeBackup' as const, plural: 'podvolumebackups', singular: 'podvolumebackup', shortNames: ['pvb'],
  description: 'One pod volume to back up, handled by the agent on the pod\'s node.',
  spec: PodVolumeBackupSpec, status: PodVolumeBackupStatus,
  printerColumns: podVolumeColumns,
} satisfies KindDefinition;

export const VolumeRestoreKind = {
  kind: 'VolumeRestore' as const, plural: 'volumerestores', singular: 'volumerestore', shortNames: ['vr'],
  description: 'Restores a backup set into pods as they are created again in the target namespaces.',
  spec: VolumeRestoreSpec, status: VolumeRestoreStatus,
  printerColumns: [phase, { name: 'Backup', type: 'string', jsonPath: '.spec.volumeBackup' }, ...volumeCountColumns, age],
} satisfies KindDefinition;

export const PodVolumeRestoreKind = {
  kind: 'PodVolumeRestore' as const, plural: 'podvolumerestores', singular: 'podvolumerestore', shortNames: ['pvr'],
  description: 'One pod volume to restore, handled by the agent on the pod\'s node while the pod\'s init container waits.',
  spec: PodVolumeRestoreSpec, status: PodVolumeRestoreStatus,
  printerColumns: podVolumeColumns,
} satisfies KindDefinition;

export const KINDS = [
  BackupRepositoryKind, VolumeBackupScheduleKind, VolumeBackupKind, PodVolumeBackupKind, VolumeRestoreKind, PodVolumeRestoreKind,
] as const;

/** The metadata fields our code reads or writes (custom objects arrive as plain JSON: times are strings). */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
}

/** An object of one of our kinds as the API server returns it. */
export interface Resource<K extends KindDefinition> {
  apiVersion: typeof API_VERSION;
  kind: K['kind'];
  metadata: ObjectMeta;
  spec: Static<K['spec']>;
  status?: Static<K['status']>;
}

export type BackupRepository = Resource<typeof BackupRepositoryKind>;
export type VolumeBackupSchedule = Resource<typeof VolumeBackupScheduleKind>;
export type VolumeBackup = Resource<typeof VolumeBackupKind>;
export type PodVolumeBackup = Resource<typeof PodVolumeBackupKind>;
export type VolumeRestore = Resource<typeof VolumeRestoreKind>;
export type PodVolumeRestore = Resource<typeof PodVolumeRestoreKind>;
