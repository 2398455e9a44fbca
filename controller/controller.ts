// The controller's parts, wired: watch caches of the Arca kinds and of marked pods (every replica),
// the restore webhook with its self-issued certificate (every replica), and the reconcilers' work
// queues (only while this replica leads).
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
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
import type { Caches, Clients, ControllerContext } from './context.ts';
import { admitPod } from './restore/pod-admission.ts';
import { reconcileVolumeRestore } from './restore/volume-restore-reconciler.ts';
import { reconcileSchedule } from './schedule/schedule-reconciler.ts';
import { startAdmissionServer, type AdmissionServer } from './webhook/admission-server.ts';
import { ensureWebhookTls, patchCaBundle } from './webhook/certificate-store.ts';
import { WorkQueue, type ReconcileResult } from './work-queue.ts';

const FIELD_MANAGER = 'arca-controller';

export interface WebhookOptions {
  address: string;
  configuration: string;
  secret: string;
  hosts: readonly string[];
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
  };
}

export async function startController(options: ControllerOptions): Promise<Controller> {
  const { kc, namespace, log, registry, resyncMs } = options;
  const clients = makeClients(kc);
  const queues: WorkQueue[] = [];
  // Filled in once the queues exist; until then (and while not leading) events need no work.
  const enqueue: Record<'backup' | 'restore' | 'schedule', (name: string) => void> = { backup: () => undefined, restore: () => undefined, schedule: () => undefined };
  const common = { kc, namespace, resyncMs, log, registry };
  const caches: Caches = {
    repositories: watchKind({ ...common, client: clients.repositories, handlers: { onUpsert: () => undefined } }),
    schedules: watchKind({ ...common, client: clients.schedules, handlers: { onUpsert: (s) => { enqueue.schedule(s.metadata.name ?? ''); } } }),
    backups: watchKind({ ...common, client: clients.backups, handlers: { onUpsert: (b) => {
      enqueue.backup(b.metadata.name ?? '');
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
  const watchers: WatchedCollection[] = [...kindWatchers, caches.restorePods];
  await Promise.all(watchers.map((w) => w.start()));

  const ctx: ControllerContext = {
    namespace, caches, clients, log, now: () => new Date(),
    events: new EventRecorder({ kc, controller: 'arca.dev/controller', instance: options.instance, log }),
  };

  let webhook: AdmissionServer | undefined;
  try {
    const tls = await ensureWebhookTls({ kc, namespace, secretName: options.webhook.secret, hosts: options.webhook.hosts, log });
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
    await patchCaBundle(kc, options.webhook.configuration, tls.ca.certPem, log);
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
  const all = { backup: backupQueue, restore: restoreQueue, schedule: scheduleQueue };
  for (const key of Object.keys(all) as (keyof typeof all)[]) enqueue[key] = (name) => { if (name !== '') all[key].add(name); };

  return {
    watchers,
    webhookUrl: webhook.url,
    lead(lost) {
      for (const queue of queues) queue.start();
      for (const b of caches.backups.cached()) backupQueue.add(b.metadata.name ?? '');
      for (const r of caches.restores.cached()) restoreQueue.add(r.metadata.name ?? '');
      for (const s of caches.schedules.cached()) scheduleQueue.add(s.metadata.name ?? '');
      lost.addEventListener('abort', () => { void Promise.all(queues.map((q) => q.stop())); }, { once: true });
    },
    async stop() {
      await Promise.all(queues.map((q) => q.stop()));
      await webhook.close();
      await Promise.all(watchers.map((w) => w.stop()));
    },
  };
}
