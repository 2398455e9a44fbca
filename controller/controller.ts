// The controller's parts, wired: watch caches of the Arca kinds and of marked pods (every replica),
// the restore webhook with its self-issued certificate (every replica), and the reconcilers' work
// queues (only while this replica leads).
import path from 'node:path';
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, VolumeBackupKind, VolumeBackupScheduleKind, VolumeRestoreKind,
} from '../kube/api/kinds.ts';
import { RESTORE_NAMESPACE_LABEL } from '../kube/api/labels.ts';
import { EventRecorder } from '../kube/events.ts';
import type { Logger } from '../kube/logger.ts';
import { registerWatchedObjects } from '../kube/metrics.ts';
import { ResourceClient } from '../kube/resources.ts';
import { watchKind } from '../kube/service.ts';
import { Watcher } from '../kube/watcher.ts';
import { reconcileVolumeBackup } from './backup/volume-backup-reconciler.ts';
import type { Caches, Clients, ControllerContext, ControllerPeriods } from './context.ts';
import { createControllerMetrics } from './metrics.ts';
import { LocalMaintenance } from './repository/local-maintenance.ts';
import type { MaintenanceJobSettings } from './repository/maintenance-job.ts';
import { reconcileRepository } from './repository/repository-reconciler.ts';
import { kubeRepositorySource, RepositoryPool } from '../repository-access/pool.ts';
import { admitPod } from './restore/pod-admission.ts';
import { reconcileVolumeRestore } from './restore/volume-restore-reconciler.ts';
import { reconcileSchedule, SCHEDULE_LABEL } from './schedule/schedule-reconciler.ts';
import { startAdmissionServer, type AdmissionServer } from './webhook/admission-server.ts';
import { CertificateRenewal } from './webhook/certificate-renewal.ts';
import { ensureWebhookTls, patchCaBundle } from './webhook/certificate-store.ts';
import { WorkQueue, type ReconcileResult } from './work-queue.ts';

const FIELD_MANAGER = 'arca-controller';

export interface WebhookOptions {
  address: string;
  configuration: string;
  secret: string;
  hosts: readonly string[];
  /** Life of each serving certificate; it is renewed at two thirds of it. */
  certificateValidityMs: number;
  restoreWaitImage: string;
}

export interface ControllerOptions {
  kc: KubeConfig;
  namespace: string;
  instance: string;
  resyncMs: number;
  webhook: WebhookOptions;
  log: Logger;
  registry: Registry;
  /** Below it, one cache per repository the controller opens. */
  cacheDir: string;
  periods: ControllerPeriods;
  maintenance: MaintenanceJobSettings;
}

/** A watch as the process frame sees it: started, synced, stopped. */
export type WatchedCollection = Pick<Watcher<unknown>, 'name' | 'isSynced' | 'start' | 'stop'>;

export interface Controller {
  readonly watchers: readonly WatchedCollection[];
  readonly webhookUrl: string;
  /** Runs the reconcilers until `lost` aborts (leadership ended). */
  lead(lost: AbortSignal): void;
  stop(): Promise<void>;
}

function makeClients(kc: KubeConfig): Clients {
  return {
    repositories: new ResourceClient(kc, BackupRepositoryKind, FIELD_MANAGER),
    schedules: new ResourceClient(kc, VolumeBackupScheduleKind, FIELD_MANAGER),
    backups: new ResourceClient(kc, VolumeBackupKind, FIELD_MANAGER),
    podVolumeBackups: new ResourceClient(kc, PodVolumeBackupKind, FIELD_MANAGER),
    restores: new ResourceClient(kc, VolumeRestoreKind, FIELD_MANAGER),
    podVolumeRestores: new ResourceClient(kc, PodVolumeRestoreKind, FIELD_MANAGER),
    core: kc.makeApiClient(CoreV1Api),
    batch: kc.makeApiClient(BatchV1Api),
  };
}

export async function startController(options: ControllerOptions): Promise<Controller> {
  const { kc, namespace, log, registry, resyncMs } = options;
  const clients = makeClients(kc);
  const queues: WorkQueue[] = [];
  // Filled in once the queues exist; until then (and while not leading) events need no work.
  const enqueue: Record<'backup' | 'restore' | 'schedule' | 'repository', (name: string) => void> = {
    backup: () => undefined, restore: () => undefined, schedule: () => undefined, repository: () => undefined,
  };
  const repositoryGenerations = new Map<string, number | undefined>();
  /** A Secret changed or went away: check the repositories that name it. */
  const secretChanged = (secret: V1Secret) => {
    for (const r of caches.repositories.cached()) {
      if (r.spec.passwordSecretRef.name === secret.metadata?.name || r.spec.credentialsSecretRef?.name === secret.metadata?.name) enqueue.repository(r.metadata.name ?? '');
    }
  };
  const common = { kc, namespace, resyncMs, log, registry };
  const caches: Caches = {
    repositories: watchKind({ ...common, client: clients.repositories, handlers: { onUpsert: (r) => {
      // Only a changed spec: the reconciler's own status writes (every check) must not requeue it.
      const name = r.metadata.name ?? '';
      if (repositoryGenerations.get(name) === r.metadata.generation) return;
      repositoryGenerations.set(name, r.metadata.generation);
      enqueue.repository(name);
    }, onDelete: (r) => { repositoryGenerations.delete(r.metadata.name ?? ''); } } }),
    schedules: watchKind({ ...common, client: clients.schedules, handlers: { onUpsert: (s) => { enqueue.schedule(s.metadata.name ?? ''); } } }),
    backups: watchKind({ ...common, client: clients.backups, handlers: { onUpsert: (b) => {
      enqueue.backup(b.metadata.name ?? '');
      // A scheduled backup that finished: its schedule applies retention.
      const schedule = b.metadata.labels?.[SCHEDULE_LABEL];
      if (schedule !== undefined) enqueue.schedule(schedule);
      for (const r of caches.restores.cached()) if (r.spec.volumeBackup === b.metadata.name) enqueue.restore(r.metadata.name ?? '');
    } } }),
    podVolumeBackups: watchKind({ ...common, client: clients.podVolumeBackups, handlers: { onUpsert: (p) => { enqueue.backup(p.spec.backupSet); } } }),
    restores: watchKind({ ...common, client: clients.restores, handlers: { onUpsert: (r) => { enqueue.restore(r.metadata.name ?? ''); } } }),
    podVolumeRestores: watchKind({ ...common, client: clients.podVolumeRestores, handlers: { onUpsert: (p) => { if (p.spec.volumeRestore !== undefined) enqueue.restore(p.spec.volumeRestore); } } }),
    restorePods: new Watcher<V1Pod>({
      kc, name: 'Pod', path: '/api/v1/pods', labelSelector: RESTORE_NAMESPACE_LABEL, resyncMs, log,
      list: () => clients.core.listPodForAllNamespaces({ labelSelector: RESTORE_NAMESPACE_LABEL }),
      parse: (raw) => raw as V1Pod,
    }, { onUpsert: (pod) => { enqueue.restore(pod.metadata?.labels?.[RESTORE_NAMESPACE_LABEL] ?? ''); } }),
  };
  const kindWatchers = [caches.repositories, caches.schedules, caches.backups, caches.podVolumeBackups, caches.restores, caches.podVolumeRestores];
  registerWatchedObjects(registry, kindWatchers);
  const secrets = new Watcher<V1Secret>({
    kc, name: 'Secret', path: `/api/v1/namespaces/${namespace}/secrets`, resyncMs: 0, log,
    list: () => clients.core.listNamespacedSecret({ namespace }),
    parse: (raw) => raw as V1Secret,
  }, { onUpsert: secretChanged, onDelete: secretChanged });
  const watchers: WatchedCollection[] = [...kindWatchers, caches.restorePods, secrets];
  await Promise.all(watchers.map((w) => w.start()));

  const ctx: ControllerContext = {
    namespace, caches, clients, log, now: () => new Date(), periods: options.periods, maintenance: options.maintenance,
    localMaintenance: new LocalMaintenance(log, (name) => { enqueue.repository(name); }),
    metrics: createControllerMetrics(registry),
    repositories: new RepositoryPool(kubeRepositorySource(kc, namespace, FIELD_MANAGER), path.resolve(options.cacheDir), log),
    events: new EventRecorder({ kc, controller: 'arca.dev/controller', instance: options.instance, log }),
  };

  let webhook: AdmissionServer | undefined;
  let renewal: CertificateRenewal;
  try {
    const store = { kc, namespace, secretName: options.webhook.secret, hosts: options.webhook.hosts, validityMs: options.webhook.certificateValidityMs, log };
    const tls = await ensureWebhookTls(store);
    webhook = await startAdmissionServer({
      address: options.webhook.address, tls: tls.serving, log,
      mutatePod: (request) => (request.operation === 'CREATE' && request.namespace !== undefined && typeof request.object === 'object' && request.object !== null
        ? admitPod(request.object, request.namespace, {
          restores: () => caches.restores.cached(),
          backupsOfSet: (set) => caches.podVolumeBackups.cached().filter((b) => b.spec.backupSet === set),
        }, options.webhook.restoreWaitImage)
        : undefined),
    });
    log.info({ url: webhook.url }, 'serving the restore webhook');
    await patchCaBundle(kc, options.webhook.configuration, tls.caBundle, log);
    renewal = new CertificateRenewal({ kc, store, configuration: options.webhook.configuration, server: webhook, registry, log }, tls);
    renewal.start();
  } catch (err) {
    await webhook?.close();
    await Promise.all(watchers.map((w) => w.stop()));
    throw err;
  }

  const makeQueue = (name: string, reconcile: (ctx: ControllerContext, key: string) => Promise<ReconcileResult>) => {
    const queue = new WorkQueue({ name, log, reconcile: (key) => reconcile(ctx, key) });
    queues.push(queue);
    return queue;
  };
  const backupQueue = makeQueue('VolumeBackup', reconcileVolumeBackup);
  const restoreQueue = makeQueue('VolumeRestore', reconcileVolumeRestore);
  const scheduleQueue = makeQueue('VolumeBackupSchedule', reconcileSchedule);
  const repositoryQueue = makeQueue('BackupRepository', reconcileRepository);
  const all = { backup: backupQueue, restore: restoreQueue, schedule: scheduleQueue, repository: repositoryQueue };
  for (const key of Object.keys(all) as (keyof typeof all)[]) enqueue[key] = (name) => { if (name !== '') all[key].add(name); };

  return {
    watchers,
    webhookUrl: webhook.url,
    lead(lost) {
      for (const queue of queues) queue.start();
      for (const b of caches.backups.cached()) backupQueue.add(b.metadata.name ?? '');
      for (const r of caches.restores.cached()) restoreQueue.add(r.metadata.name ?? '');
      for (const s of caches.schedules.cached()) scheduleQueue.add(s.metadata.name ?? '');
      for (const r of caches.repositories.cached()) repositoryQueue.add(r.metadata.name ?? '');
      lost.addEventListener('abort', () => { void Promise.all(queues.map((q) => q.stop())); }, { once: true });
    },
    async stop() {
      await Promise.all(queues.map((q) => q.stop()));
      await renewal.stop();
      await webhook.close();
      await Promise.all(watchers.map((w) => w.stop()));
      await ctx.repositories.closeAll();
    },
  };
}
