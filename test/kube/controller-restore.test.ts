import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, VolumeBackupKind, VolumeRestoreKind, type PodVolumeBackup } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL, RESTORE_NAMESPACE_LABEL, RESTORE_VOLUMES_ANNOTATION } from '../../kube/api/labels.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild } from '../support/child-process.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until, type ControllerProcess,
} from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';

// The controller against the real API server: the test plays the kubelet (pods are created bound
// to a node and their status patched) and the node agents (per-volume objects patched to a final
// phase); the API server itself calls the restore webhook.

const SNAPSHOT = (n: number) => n.toString(16).padStart(64, '0');

function pod(name: { name?: string; generateName?: string }, spec: Partial<NonNullable<V1Pod['spec']>>, meta: Partial<NonNullable<V1Pod['metadata']>> = {}): V1Pod {
  return {
    metadata: { ...name, ...meta },
    spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
  };
}

const statefulSetOwner = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'sts-uid', controller: true }];
const replicaSetOwner = (hash: string) => [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${hash}`, uid: `rs-${hash}`, controller: true }];

describe.skipIf(!kubeAvailable)('arca controller: backups and restores', () => {
  let admin: KubeConfig;
  let core: CoreV1Api;
  let controllerNs: string;
  let appNs: string;
  let targetNs: string;
  let webhookConfig: string;
  let webhookPort: number;
  let controller: ControllerProcess;
  const children: ChildProcess[] = [];
  let clients: {
    repositories: ResourceClient<typeof BackupRepositoryKind>;
    backups: ResourceClient<typeof VolumeBackupKind>;
    pvbs: ResourceClient<typeof PodVolumeBackupKind>;
    restores: ResourceClient<typeof VolumeRestoreKind>;
    pvrs: ResourceClient<typeof PodVolumeRestoreKind>;
  };


  async function runningPod(namespace: string, body: V1Pod): Promise<V1Pod> {
    const created = await core.createNamespacedPod({ namespace, body });
    const name = created.metadata?.name ?? '';
    await core.replaceNamespacedPodStatus({ namespace, name, body: { metadata: created.metadata, spec: created.spec, status: { phase: 'Running' } } });
    return created;
  }

  /** The kubelet's part on the pod's node: volumes mounted, the injected init container started. */
  async function restoreWaitStarts(namespace: string, name: string): Promise<void> {
    const current = await core.readNamespacedPod({ namespace, name });
    const initContainerStatuses = [{ name: 'arca-restore-wait', image: 'arca:test', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date() } } }];
    await core.replaceNamespacedPodStatus({ namespace, name, body: { metadata: current.metadata, spec: current.spec, status: { phase: 'Pending', initContainerStatuses } } });
  }

  async function agentFinishes(pvb: PodVolumeBackup, snapshot: string, bytes: number): Promise<void> {
    await clients.pvbs.replaceStatus({
      ...pvb,
      status: {
        phase: 'Completed', snapshotID: snapshot,
        stats: { filesNew: 1, filesChanged: 0, filesUnmodified: 0, dataAdded: bytes / 2, totalFilesProcessed: 1, totalBytesProcessed: bytes },
      },
    });
  }

  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(CoreV1Api);
    await installCrds(admin);
    controllerNs = await createTestNamespace(admin, 'ctl');
    appNs = await createTestNamespace(admin, 'app');
    targetNs = `arca-target-${randomBytes(4).toString('hex')}`;
    clients = {
      repositories: new ResourceClient(admin, BackupRepositoryKind, 'arca-test'),
      backups: new ResourceClient(admin, VolumeBackupKind, 'arca-test'),
      pvbs: new ResourceClient(admin, PodVolumeBackupKind, 'arca-test'),
      restores: new ResourceClient(admin, VolumeRestoreKind, 'arca-test'),
      pvrs: new ResourceClient(admin, PodVolumeRestoreKind, 'arca-test'),
    };
    await clients.repositories.create(controllerNs, { metadata: { name: 'repo' }, spec: { url: '/backups', passwordSecretRef: { name: 'repo', key: 'password' } } });
    await clients.repositories.create(controllerNs, { metadata: { name: 'elsewhere' }, spec: { url: '/other', passwordSecretRef: { name: 'repo', key: 'password' }, readOnly: true } });

    // The webhook configuration as manifests/ has it, but reaching the controller at a URL: nothing
    // runs in pods here. Only this one may act on restore namespaces (the manifests' one has no
    // Service behind it in this cluster).
    webhookPort = await freePort();
    await admin.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name: 'arca-restore' }).catch(() => undefined);
    webhookConfig = await createWebhookConfiguration(admin, webhookPort);
    controller = await startControllerProcess(controllerArgs(kubeTestEnv().kubeconfig, controllerNs, webhookConfig, webhookPort));
    children.push(controller.child);
  });

  afterAll(async () => {
    if (process.env.DEBUG_CONTROLLER) console.log(controller.output());
    await Promise.all(children.map((c) => stopChild(c)));
    await deleteWebhookConfiguration(admin, webhookConfig);
  });

  test('a VolumeBackup makes one PodVolumeBackup per selected volume on its pod\'s node, reports pods it cannot back up, and completes with the agents\' results', async () => {
    await runningPod(appNs, pod({ name: 'db-0' }, {
      nodeName: 'node-a',
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }, { name: 'config', configMap: { name: 'db' } }],
    }, { ownerReferences: statefulSetOwner, annotations: { 'backup.velero.io/backup-volumes': 'data,config' } }));
    const web = await runningPod(appNs, pod({ generateName: 'web-5d9f-' }, {
      nodeName: 'node-b',
      volumes: [{ name: 'cache', emptyDir: {} }, { name: 'token', projected: { sources: [] } }, { name: 'host', hostPath: { path: '/var' } }],
    }, { ownerReferences: replicaSetOwner('5d9f'), labels: { 'pod-template-hash': '5d9f' }, annotations: { 'backup.arca.dev/backup-volumes': 'cache,token,host' } }));
    await runningPod(appNs, pod({ name: 'plain' }, { nodeName: 'node-a', volumes: [{ name: 'scratch', emptyDir: {} }] }));
    await core.createNamespacedPod({ namespace: appNs, body: pod({ name: 'late' }, { volumes: [{ name: 'data', emptyDir: {} }] }, { annotations: { 'backup.arca.dev/backup-volumes': 'data' } }) });

    await clients.backups.create(controllerNs, { metadata: { name: 'set1' }, spec: { repository: 'repo', includedNamespaces: [appNs] } });
    const started = await until(async () => {
      const b = await clients.backups.get(controllerNs, 'set1');
      return b.status?.phase === 'InProgress' ? b : undefined;
    });
    expect(started.status?.volumes?.total).toBe(2);
    expect(started.status?.skippedPods).toEqual([{ namespace: appNs, name: 'late', reason: 'not scheduled to a node' }]);

    const pvbs = (await clients.pvbs.list(controllerNs, { labelSelector: `${BACKUP_SET_LABEL}=set1` })).items;
    const described = pvbs.map((p) => ({ node: p.spec.node, nodeLabel: p.metadata.labels?.['arca.dev/node'], pod: p.spec.pod.name, volume: p.spec.volume, pvc: p.spec.pvcName, owner: p.spec.ownerWorkload, repository: p.spec.repository, ownedBy: p.metadata.ownerReferences?.[0]?.name }));
    expect(described.sort((a, b) => a.volume.localeCompare(b.volume))).toEqual([
      { node: 'node-b', nodeLabel: 'node-b', pod: web.metadata?.name, volume: 'cache', pvc: undefined, owner: { kind: 'Deployment', name: 'web' }, repository: 'repo', ownedBy: 'set1' },
      { node: 'node-a', nodeLabel: 'node-a', pod: 'db-0', volume: 'data', pvc: 'data-db-0', owner: { kind: 'StatefulSet', name: 'db' }, repository: 'repo', ownedBy: 'set1' },
    ]);

    for (const [i, pvb] of pvbs.entries()) await agentFinishes(pvb, SNAPSHOT(i + 1), 1000 * (i + 1));
    const done = await until(async () => {
      const b = await clients.backups.get(controllerNs, 'set1');
      return b.status?.phase === 'Completed' ? b : undefined;
    });
    expect(done.status?.volumes).toEqual({ total: 2, completed: 2, partiallyFailed: 0, failed: 0, canceled: 0 });
    expect(done.status?.totals).toEqual({ bytesProcessed: 3000, filesProcessed: 2, dataAdded: 1500 });
    expect(done.status?.completionTimestamp).toBeDefined();
  });

  test('a backup to a read-only repository is refused with the reason', async () => {
    await clients.backups.create(controllerNs, { metadata: { name: 'to-readonly' }, spec: { repository: 'elsewhere', includedNamespaces: [appNs] } });
    const refused = await until(async () => {
      const b = await clients.backups.get(controllerNs, 'to-readonly');
      return b.status?.phase === 'Failed' ? b : undefined;
    });
    expect(refused.status?.message).toBe('BackupRepository elsewhere is read-only in this cluster; back up to a writable repository.');
    expect((await clients.pvbs.list(controllerNs, { labelSelector: `${BACKUP_SET_LABEL}=to-readonly` })).items).toEqual([]);
  });

  test('the restore webhook, called by the API server, makes pods in a restore target wait for their volumes; other pods are untouched', async () => {
    await clients.restores.create(controllerNs, { metadata: { name: 'r1' }, spec: { volumeBackup: 'set1', namespaceMapping: { [appNs]: targetNs } } });
    const restore = await until(async () => {
      const r = await clients.restores.get(controllerNs, 'r1');
      return r.status?.phase === 'InProgress' ? r : undefined;
    });
    expect(restore.status?.targetNamespaces).toEqual([targetNs]);
    expect(restore.status?.volumes?.total).toBe(2);
    // The target did not exist: the controller made it, labelled.
    expect((await core.readNamespace({ name: targetNs })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('r1');

    const db = (name: string, nodeName?: string) => pod({ name }, {
      ...(nodeName === undefined ? {} : { nodeName }),
      initContainers: [{ name: 'migrate', image: 'app:1' }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }, { name: 'config', configMap: { name: 'db' } }],
    }, { ownerReferences: statefulSetOwner });
    // The webhook's caches catch up with the restore a moment after its status: dry runs until then.
    await until(async () => {
      const dry = await core.createNamespacedPod({ namespace: targetNs, body: db('db-0'), dryRun: 'All' });
      return dry.spec?.initContainers?.[0]?.name === 'arca-restore-wait' ? true : undefined;
    });
    const dbPod = await core.createNamespacedPod({ namespace: targetNs, body: db('db-0', 'node-c') });
    const init = dbPod.spec?.initContainers ?? [];
    expect(init.map((c) => c.name)).toEqual(['arca-restore-wait', 'migrate']);
    expect(init[0]).toMatchObject({
      image: 'arca:test',
      args: ['restore-wait', '--restore-uid', restore.metadata.uid, '/arca-restore/data'],
      volumeMounts: [{ name: 'data', mountPath: '/arca-restore/data' }],
    });
    expect(dbPod.metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('r1');
    const dbSource = (await clients.pvbs.list(controllerNs, { labelSelector: `${BACKUP_SET_LABEL}=set1` })).items.find((p) => p.spec.volume === 'data');
    expect(JSON.parse(dbPod.metadata?.annotations?.[RESTORE_VOLUMES_ANNOTATION] ?? '{}')).toEqual({ data: dbSource?.metadata.name });

    // A Deployment's new pod: a generateName, another ReplicaSet of the same Deployment, not yet scheduled.
    const webPod = await core.createNamespacedPod({ namespace: targetNs, body: pod({ generateName: 'web-77aa-' }, {
      volumes: [{ name: 'cache', emptyDir: {} }, { name: 'token', projected: { sources: [] } }],
    }, { ownerReferences: replicaSetOwner('77aa'), labels: { 'pod-template-hash': '77aa' } }) });
    expect(webPod.spec?.initContainers?.map((c) => c.name)).toEqual(['arca-restore-wait']);
    expect(webPod.spec?.initContainers?.[0]?.volumeMounts).toEqual([{ name: 'cache', mountPath: '/arca-restore/cache' }]);

    // Matching nothing (another volume, no owner), or outside the restore: admitted as sent.
    const unrelated = await core.createNamespacedPod({ namespace: targetNs, body: pod({ name: 'other' }, { volumes: [{ name: 'scratch', emptyDir: {} }] }) });
    expect(unrelated.spec?.initContainers).toBeUndefined();
    expect(unrelated.metadata?.labels).toBeUndefined();
    const outside = await core.createNamespacedPod({ namespace: appNs, body: db('db-1') });
    expect(outside.spec?.initContainers?.map((c) => c.name)).toEqual(['migrate']);

    // Once its node has mounted its volumes and started restore-wait, each marked pod's volumes
    // get PodVolumeRestores on its node.
    await restoreWaitStarts(targetNs, 'db-0');
    const pvrsOf = async () => (await clients.pvrs.list(controllerNs, { labelSelector: `${RESTORE_NAMESPACE_LABEL}=r1` })).items;
    const dbPvrs = await until(async () => { const l = await pvrsOf(); return l.length === 1 ? l : undefined; });
    expect(dbPvrs[0]?.spec).toMatchObject({
      node: 'node-c', pod: { namespace: targetNs, name: 'db-0', uid: dbPod.metadata?.uid }, volume: 'data', repository: 'repo',
      snapshotID: dbSource?.status?.snapshotID, restoreUID: restore.metadata.uid, volumeRestore: 'r1',
    });
    expect(dbPvrs[0]?.metadata.labels?.['arca.dev/node']).toBe('node-c');
    const webName = webPod.metadata?.name ?? '';
    await core.createNamespacedPodBinding({ namespace: targetNs, name: webName, body: { metadata: { name: webName }, target: { kind: 'Node', name: 'node-d' } } });
    await restoreWaitStarts(targetNs, webName);
    const all = await until(async () => { const l = await pvrsOf(); return l.length === 2 ? l : undefined; });
    expect(all.find((p) => p.spec.volume === 'cache')?.spec).toMatchObject({ node: 'node-d', pod: { name: webName, uid: webPod.metadata?.uid } });

    // The agents finish: the restore completes and the namespace leaves the webhook's scope.
    for (const pvr of all) await clients.pvrs.replaceStatus({ ...pvr, status: { phase: 'Completed' } });
    const done = await until(async () => {
      const r = await clients.restores.get(controllerNs, 'r1');
      return r.status?.phase === 'Completed' ? r : undefined;
    });
    expect(done.status?.volumes).toEqual({ total: 2, completed: 2, partiallyFailed: 0, failed: 0 });
    await until(async () => ((await core.readNamespace({ name: targetNs })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL] === undefined ? true : undefined));
  });

  test('the webhook admits a review it cannot read unchanged and refuses a request that is not a review', async () => {
    const secret = await core.readNamespacedSecret({ namespace: controllerNs, name: 'arca-webhook-tls' });
    const ca = Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString();
    const post = (body: unknown) => new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: webhookPort, path: '/mutate-pods', method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }); });
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    const garbled = await post({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', operation: 'CREATE', namespace: targetNs, object: { spec: 'not a pod spec' } } });
    expect(garbled).toEqual({ status: 200, body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true } } });
    expect((await post({ hello: 'world' })).status).toBe(400);
  });

  test('canceling a VolumeBackup cancels its running volumes; deleting a VolumeRestore takes its namespaces out of the webhook\'s scope', async () => {
    await clients.backups.create(controllerNs, { metadata: { name: 'to-cancel' }, spec: { repository: 'repo', includedNamespaces: [appNs] } });
    await until(async () => ((await clients.backups.get(controllerNs, 'to-cancel')).status?.phase === 'InProgress' ? true : undefined));
    await clients.backups.mergePatch(controllerNs, 'to-cancel', { spec: { cancel: true } });
    const canceled = await until(async () => { const b = await clients.backups.get(controllerNs, 'to-cancel'); return b.status?.phase === 'Failed' ? b : undefined; });
    expect(canceled.status?.message).toBe('Canceled: running volume backups were stopped.');
    const volumes = (await clients.pvbs.list(controllerNs, { labelSelector: `${BACKUP_SET_LABEL}=to-cancel` })).items;
    expect(volumes.map((p) => p.spec.cancel)).toEqual([true, true]);

    const target = `arca-target-${randomBytes(4).toString('hex')}`;
    await clients.restores.create(controllerNs, { metadata: { name: 'r2' }, spec: { volumeBackup: 'set1', namespaceMapping: { [appNs]: target } } });
    await until(async () => ((await clients.restores.get(controllerNs, 'r2')).status?.phase === 'InProgress' ? true : undefined));
    expect((await core.readNamespace({ name: target })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('r2');
    await clients.restores.delete(controllerNs, 'r2');
    await until(async () => ((await clients.restores.get(controllerNs, 'r2').then(() => 200, (err: unknown) => httpStatusOf(err))) === 404 ? true : undefined));
    expect((await core.readNamespace({ name: target })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBeUndefined();
  });

  test('with the controller down, pods outside restore namespaces are still created; inside one they are refused', async () => {
    await stopChild(controller.child);
    const free = await core.createNamespacedPod({ namespace: appNs, body: pod({ name: 'while-down' }, { volumes: [{ name: 'data', emptyDir: {} }] }) });
    expect(free.metadata?.name).toBe('while-down');
    const held = await createTestNamespace(admin, 'held');
    await core.patchNamespace({ name: held, body: [{ op: 'add', path: '/metadata/labels', value: { [RESTORE_NAMESPACE_LABEL]: 'manual' } }] });
    await expect(core.createNamespacedPod({ namespace: held, body: pod({ name: 'waits' }, {}) })).rejects.toThrow(/restore\.pods\.arca\.dev/);
  });
});
