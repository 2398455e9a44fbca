// The Job that maintains one repository in one cron slot: `arca prune` (an init container), then
// `arca check --read-data-subset` once prune succeeded, with the repository's Secrets as the
// CLI's environment and their own memory limits. Its name is derived from the repository and the
// slot, so a restarted or newly elected controller finds the slot's Job instead of making another.
import { createHash } from 'node:crypto';
import type { V1Container, V1EnvVar, V1Job } from '@kubernetes/client-node';
import { API_VERSION, type BackupRepository } from '../../kube/api/kinds.ts';

/** On maintenance Jobs: the BackupRepository they maintain (running ones are found by it). */
export const MAINTENANCE_LABEL = 'arca.dev/maintenance';

export interface MaintenanceJobSettings {
  /** The image holding `arca`. */
  image: string;
  /** Memory request and limit of each container, e.g. 1Gi. */
  memory: string;
}

/** `<repository (at most 24)>-<hash of the name>-maint-<yyyymmddhhmmss>`: unique per repository and slot, at most 52 characters. */
export function maintenanceJobName(repository: string, slot: Date): string {
  const hash = createHash('sha256').update(repository).digest('hex').slice(0, 6);
  const stamp = slot.toISOString().replace(/\.\d+Z$/, '').replace(/[-:T]/g, '');
  return `${repository.slice(0, 24).replace(/-+$/, '')}-${hash}-maint-${stamp}`;
}

/** The CLI's environment for the repository: URL, password and backend settings from the spec, credentials from their Secret. */
function repositoryEnv(repository: BackupRepository): V1EnvVar[] {
  const { url, passwordSecretRef, s3 } = repository.spec;
  return [
    { name: 'ARCA_REPOSITORY', value: url },
    { name: 'ARCA_PASSWORD', valueFrom: { secretKeyRef: { name: passwordSecretRef.name, key: passwordSecretRef.key } } },
    ...(s3?.endpoint === undefined ? [] : [{ name: 'ARCA_S3_ENDPOINT', value: s3.endpoint }]),
    ...(s3?.forcePathStyle === undefined ? [] : [{ name: 'ARCA_S3_PATH_STYLE', value: String(s3.forcePathStyle) }]),
    ...(s3?.region === undefined ? [] : [{ name: 'AWS_REGION', value: s3.region }]),
  ];
}

export function maintenanceJob(repository: BackupRepository, name: string, settings: MaintenanceJobSettings): V1Job {
  const repo = repository.metadata.name ?? '';
  const maintenance = repository.spec.maintenance;
  const container = (containerName: string, args: string[]): V1Container => ({
    name: containerName,
    image: settings.image,
    args: ['--cache-dir', '/cache', ...args],
    env: repositoryEnv(repository),
    envFrom: repository.spec.credentialsSecretRef === undefined ? undefined : [{ secretRef: { name: repository.spec.credentialsSecretRef.name } }],
    resources: { requests: { memory: settings.memory }, limits: { memory: settings.memory } },
    // The root file system is read-only: the cache and any spool files go to emptyDirs.
    volumeMounts: [{ name: 'cache', mountPath: '/cache' }, { name: 'tmp', mountPath: '/tmp' }],
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
  });
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      labels: { [MAINTENANCE_LABEL]: repo },
      ownerReferences: [{ apiVersion: API_VERSION, kind: 'BackupRepository', name: repo, uid: repository.metadata.uid ?? '', controller: true }],
    },
    spec: {
      // A failed run is reported, not retried: the next slot runs again.
      backoffLimit: 0,
      template: {
        metadata: { labels: { [MAINTENANCE_LABEL]: repo } },
        spec: {
          restartPolicy: 'Never',
          initContainers: [container('prune', ['prune', '--max-unused', `${maintenance?.pruneMaxUnusedPercent ?? 5}%`])],
          containers: [container('check', ['check', '--read-data-subset', maintenance?.checkReadDataSubset ?? '5%'])],
          volumes: [{ name: 'cache', emptyDir: {} }, { name: 'tmp', emptyDir: {} }],
        },
      },
    },
  };
}

/** One maintenance run, a Job's or one inside the controller (local-path repositories), as the status reports it. */
export interface MaintenanceRun {
  name: string;
  outcome: 'Running' | 'Succeeded' | 'Failed';
  startTime?: Date;
  completionTime?: Date;
  /** What it did, or why it failed. */
  message?: string;
}

export function jobRun(job: V1Job): MaintenanceRun {
  const conditions = job.status?.conditions ?? [];
  const complete = conditions.find((c) => c.type === 'Complete' && c.status === 'True');
  const failed = conditions.find((c) => c.type === 'Failed' && c.status === 'True');
  const name = job.metadata?.name ?? '';
  const startTime = job.status?.startTime;
  if (complete !== undefined) return { name, outcome: 'Succeeded', startTime, completionTime: job.status?.completionTime ?? complete.lastTransitionTime, message: `Job ${name} pruned and checked the repository.` };
  if (failed !== undefined) return { name, outcome: 'Failed', startTime, completionTime: failed.lastTransitionTime, message: `Job ${name} failed; see its pods' logs (prune, then check).` };
  return { name, outcome: 'Running', startTime };
}
