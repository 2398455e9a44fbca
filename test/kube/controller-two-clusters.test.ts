import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initRepository } from '../../engine/index.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, VolumeBackupKind, VolumeRestoreKind, type BackupRepository } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL, RESTORE_INIT_CONTAINER, RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { findControlPlaneBinaries, kubeCacheDir, kubeConfigFromFile, startControlPlane, type ControlPlane } from '../../scripts/kube/control-plane.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild, waitForLine } from '../support/child-process.ts';
import { runArca, startArca } from '../support/cli.ts';
import { controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until, type ControllerProcess } from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { asObject, scanTree } from '../support/fs-tree.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';

// The disaster-recovery promise across two real control planes: cluster one backs up into an S3
// repository; cluster two, a second kube-apiserver and etcd started here with its own controller
// and agent and the repository read-only, sees cluster one's backup set as a synced VolumeBackup
// and restores the app's volume from it through its own webhook, restore-wait and agent.

const PASSWORD = 'two-clusters';
const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

/** One cluster's Arca: its API server, controller namespace, controller and one agent on one node. */
interface Cluster {
  name: string;
  kubeconfig: string;
  admin: KubeConfig;
  core: CoreV1Api;
  arcaNs: string;
  node: string;
  podsDir: string;
  controller: ControllerProcess;
  backups: ResourceClient<typeof VolumeBackupKind>;
  pvbs: ResourceClient<typeof PodVolumeBackupKind>;
  restores: ResourceClient<typeof VolumeRestoreKind>;
}

const webPod = (hash: string, nodeName?: string): V1Pod => ({
  metadata: {
    generateName: `web-${hash}-`, labels: { app: 'web', 'pod-template-hash': hash },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${hash}`, uid: `rs-web-${hash}`, controller: true }],
    annotations: { 'backup.arca.dev/backup-volumes': 'cache' },
  },
  spec: { ...(nodeName === undefined ? {} : { nodeName }), containers: [{ name: 'web', image: 'nginx:1' }], volumes: [{ name: 'cache', emptyDir: {} }] },
});

describe.skipIf(!kubeAvailable)('two clusters, one repository: the second restores what the first backed up', () => {
  let root: string;
  let s3: S3Server;
  let second: ControlPlane | undefined;
  const children: ChildProcess[] = [];
  const clusters: Cluster[] = [];
  /** Webhook configurations made in the run's shared control plane, which outlives this file. */
  const sharedWebhooks: string[] = [];
  let appNs: string;
  let files: Record<string, unknown>;

  /** The pod's status as its node's kubelet reports it. */
  async function setPhase(cluster: Cluster, pod: V1Pod, phase: string, runningInit: readonly string[] = []): Promise<void> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    const current = await cluster.core.readNamespacedPod({ namespace, name });
    const initContainerStatuses = runningInit.map((c) => ({ name: c, image: 'arca:test', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date() } } }));
    await cluster.core.replaceNamespacedPodStatus({ namespace, name, body: { metadata: current.metadata, spec: current.spec, status: { phase, initContainerStatuses } } });
  }

  const cacheDirOf = (cluster: Cluster, pod: V1Pod) => path.join(cluster.podsDir, pod.metadata?.uid ?? '', 'volumes', 'kubernetes.io~empty-dir', 'cache');

  /** Arca installed in a cluster: CRDs, its namespace, the repository's Secrets and BackupRepository, controller and agent. */
  async function install(name: string, kubeconfig: string, admin: KubeConfig, repository: Partial<BackupRepository['spec']>): Promise<Cluster> {
    const core = admin.makeApiClient(CoreV1Api);
    await installCrds(admin, kubeconfig);
    const arcaNs = await createTestNamespace(admin, `system-${name}`);
    await core.createNamespacedSecret({ namespace: arcaNs, body: { metadata: { name: 'repo' }, stringData: { password: PASSWORD } } });
    await core.createNamespacedSecret({ namespace: arcaNs, body: { metadata: { name: 's3' }, stringData: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } } });
    await new ResourceClient(admin, BackupRepositoryKind, 'arca-test').create(arcaNs, { metadata: { name: 'offsite' }, spec: {
      url: `s3://${s3.bucket}/prod`, passwordSecretRef: { name: 'repo', key: 'password' }, credentialsSecretRef: { name: 's3' },
      s3: { endpoint: s3.endpoint, forcePathStyle: true }, ...repository,
    } });
    const port = await freePort();
    const webhook = await createWebhookConfiguration(admin, port);
    if (kubeconfig === kubeTestEnv().kubeconfig) sharedWebhooks.push(webhook);
    const controller = await startControllerProcess([
      ...controllerArgs(kubeconfig, arcaNs, webhook, port),
      '--repository-check-period', '1s', '--cache-dir', path.join(root, name, 'controller-cache'),
    ]);
    children.push(controller.child);
    const node = `${name}-node`;
    const podsDir = path.join(root, name, 'pods');
    await mkdir(podsDir, { recursive: true });
    const agent = startArca(['agent', '--node', node, '--pods-dir', podsDir, '--cache-dir', path.join(root, name, 'agent-cache'), '--namespace', arcaNs,
      '--kubeconfig', kubeconfig, '--metrics-address', '127.0.0.1:0', '--cluster', name]);
    children.push(agent);
    await waitForLine(`agent of ${name}`, agent, /"msg":"(started)"/, 60_000);
    const cluster: Cluster = {
      name, kubeconfig, admin, core, arcaNs, node, podsDir, controller,
      backups: new ResourceClient(admin, VolumeBackupKind, 'arca-test'),
      pvbs: new ResourceClient(admin, PodVolumeBackupKind, 'arca-test'),
      restores: new ResourceClient(admin, VolumeRestoreKind, 'arca-test'),
    };
    clusters.push(cluster);
    return cluster;
  }

  async function final<K extends typeof VolumeBackupKind | typeof VolumeRestoreKind>(client: ResourceClient<K>, namespace: string, name: string): ReturnType<ResourceClient<K>['get']> {
    return until(async () => {
      const object = await client.get(namespace, name).catch(() => undefined);
      return FINAL.has(object?.status?.phase ?? '') ? object : undefined;
    }, 200);
  }

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-two-clusters-'));
    // The second control plane starts while the first cluster is set up.
    const starting = findControlPlaneBinaries(kubeCacheDir(process.env)).then(async (binaries) => {
      const dir = path.join(root, 'control-plane-two');
      await mkdir(dir);
      second = await startControlPlane({ dir, binaries });
      return second;
    });
    s3 = await startS3Server();
    await (await initRepository({
      url: `s3://${s3.bucket}/prod`, password: PASSWORD, kdf: { fixedN: 1024 },
      backend: { s3: { endpoint: s3.endpoint, pathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } },
    })).close();
    await install('one', kubeTestEnv().kubeconfig, adminKubeConfig(), {});
    await starting;
  }, 300_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    for (const name of sharedWebhooks) await deleteWebhookConfiguration(adminKubeConfig(), name);
    await second?.stop();
    await s3.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('cluster one backs up an app\'s volume into the shared repository', async () => {
    const [one] = clusters;
    if (one === undefined) throw new Error('cluster one is not installed');
    appNs = await createTestNamespace(one.admin, 'shop');
    const web = await one.core.createNamespacedPod({ namespace: appNs, body: webPod('5d9f', one.node) });
    const dir = cacheDirOf(one, web);
    await mkdir(path.join(dir, 'thumbs'), { recursive: true });
    for (let i = 0; i < 10; i++) await writeFile(path.join(dir, 'thumbs', `t-${i}.png`), randomBytes(2000 + i * 31));
    await writeFile(path.join(dir, 'index.html'), '<h1>cluster one</h1>\n');
    files = asObject(await scanTree(dir));
    await setPhase(one, web, 'Running');

    await one.backups.create(one.arcaNs, { metadata: { name: 'before-the-fire' }, spec: { repository: 'offsite', includedNamespaces: [appNs] } });
    const done = await final(one.backups, one.arcaNs, 'before-the-fire');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 1, completed: 1 } });
  });

  test('cluster two, pointed at the repository read-only, sees the backup set and restores the app from it', async () => {
    const [one] = clusters;
    if (one === undefined || second === undefined) throw new Error('the clusters are not set up');
    const two = await install('two', second.kubeconfig, kubeConfigFromFile(second.kubeconfig), { readOnly: true, syncPeriod: '1s' });
    const [source] = (await one.pvbs.list(one.arcaNs, { labelSelector: `${BACKUP_SET_LABEL}=before-the-fire` })).items;

    // Sync: the set, Completed, with the same snapshot and where it came from; no agent here takes it for work.
    const synced = await final(two.backups, two.arcaNs, 'before-the-fire');
    expect(synced.metadata.labels?.['arca.dev/synced']).toBe('true');
    expect(synced.status).toMatchObject({ phase: 'Completed', volumes: { total: 1, completed: 1 } });
    const [copy] = (await two.pvbs.list(two.arcaNs, { labelSelector: `${BACKUP_SET_LABEL}=before-the-fire` })).items;
    expect(copy?.status?.snapshotID).toBe(source?.status?.snapshotID);
    expect(copy?.spec).toMatchObject({ repository: 'offsite', node: one.node, volume: 'cache', pod: { namespace: appNs, name: source?.spec.pod.name } });
    const metric = await scrapeMetrics(two.controller.url);
    expect(metric('arca_sync_snapshots_synced_total', { repository: 'offsite' })).toBe(1);

    // The app's namespace, by the same name, in the new cluster; the restore; the app applied again.
    await two.core.createNamespace({ body: { metadata: { name: appNs } } });
    await two.restores.create(two.arcaNs, { metadata: { name: 'after-the-fire' }, spec: { volumeBackup: 'before-the-fire' } });
    const restoreUid = (await until(async () => {
      const r = await two.restores.get(two.arcaNs, 'after-the-fire');
      return r.status?.phase === 'InProgress' ? r : undefined;
    })).metadata.uid ?? '';
    await until(async () => {
      const dry = await two.core.createNamespacedPod({ namespace: appNs, body: webPod('77aa'), dryRun: 'All' });
      return dry.spec?.initContainers?.[0]?.name === RESTORE_INIT_CONTAINER ? true : undefined;
    });
    const web = await two.core.createNamespacedPod({ namespace: appNs, body: webPod('77aa') });
    const init = web.spec?.initContainers?.[0];
    expect(init?.args).toEqual(['restore-wait', '--restore-uid', restoreUid, '/arca-restore/cache']);
    expect(web.metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('after-the-fire');

    // Its node's kubelet: bound, the empty volume mounted, restore-wait started with the injected arguments.
    const name = web.metadata?.name ?? '';
    await two.core.createNamespacedPodBinding({ namespace: appNs, name, body: { metadata: { name }, target: { kind: 'Node', name: two.node } } });
    const dir = cacheDirOf(two, web);
    await mkdir(dir, { recursive: true });
    const waiting = runArca((init?.args ?? []).map((arg) => (arg === '/arca-restore/cache' ? dir : arg)));
    await setPhase(two, web, 'Pending', [RESTORE_INIT_CONTAINER]);

    const result = await waiting;
    expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'arca restore-wait: 1 volume restored\n' });
    const done = await final(two.restores, two.arcaNs, 'after-the-fire');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 1, completed: 1 } });
    expect(asObject(await scanTree(dir))).toEqual(files);
  });
});
