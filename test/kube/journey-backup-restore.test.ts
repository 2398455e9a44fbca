import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initRepository } from '../../engine/index.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, VolumeBackupKind, VolumeRestoreKind } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL, RESTORE_INIT_CONTAINER, RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild, waitForLine } from '../support/child-process.ts';
import { runArca, startArca, type RunResult } from '../support/cli.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until, type ControllerProcess,
} from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv, kubectl } from '../support/control-plane.ts';
import { asObject, scanTree, type ScannedEntry } from '../support/fs-tree.ts';

// The operator's first two journeys with every Arca process real: the controller (and its restore
// webhook, called by the API server), one agent per simulated node, and `arca restore-wait` as the
// injected init container runs it. The test plays the kubelet: it binds pods to nodes, makes their
// volume directories under each node's pods directory and patches their status.

const PASSWORD = 'journey-password';
const NODES = ['node-a', 'node-b'] as const;
type NodeName = typeof NODES[number];
const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

const statefulSetOwner = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'sts-db', controller: true }];
const replicaSetOwner = (hash: string) => [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${hash}`, uid: `rs-web-${hash}`, controller: true }];

/** The kubelet's directory of a volume, relative to the pod's `volumes/`. */
type VolumeDirs = Record<string, string>;

describe.skipIf(!kubeAvailable)('journeys 1 and 2: install, first backup, disaster, restore in place', () => {
  let admin: KubeConfig;
  let core: CoreV1Api;
  let arcaNs: string;
  let appNs: string;
  let root: string;
  let webhookConfig: string;
  let controller: ControllerProcess;
  const agents = new Map<NodeName, ChildProcess>();
  let clients: {
    backups: ResourceClient<typeof VolumeBackupKind>;
    pvbs: ResourceClient<typeof PodVolumeBackupKind>;
    restores: ResourceClient<typeof VolumeRestoreKind>;
    pvrs: ResourceClient<typeof PodVolumeRestoreKind>;
  };
  let pvName: string;
  /** What the backed-up volumes held, by volume name, scanned before the disaster. */
  const before = new Map<string, Record<string, ScannedEntry>>();

  const podsDir = (node: NodeName): string => path.join(root, node, 'pods');

  /** The kubelet's part once a pod is on `node`: its volume directories, then status Running. */
  async function mountVolumes(node: NodeName, pod: V1Pod, dirs: VolumeDirs): Promise<Record<string, string>> {
    const made: Record<string, string> = {};
    for (const [volume, rel] of Object.entries(dirs)) {
      made[volume] = path.join(podsDir(node), pod.metadata?.uid ?? '', 'volumes', rel);
      await mkdir(made[volume], { recursive: true });
    }
    return made;
  }

  /** The pod's status as the kubelet reports it: its phase and, while it has them, its running init containers. */
  async function setPhase(pod: V1Pod, phase: string, runningInit: readonly string[] = []): Promise<void> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    const current = await core.readNamespacedPod({ namespace, name });
    const initContainerStatuses = runningInit.map((c) => ({ name: c, image: 'arca:test', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date() } } }));
    await core.replaceNamespacedPodStatus({ namespace, name, body: { metadata: current.metadata, spec: current.spec, status: { phase, initContainerStatuses } } });
  }

  function dbPod(nodeName?: NodeName): V1Pod {
    return {
      metadata: { name: 'db-0', ownerReferences: statefulSetOwner, annotations: { 'backup.arca.dev/backup-volumes': 'data' } },
      spec: {
        ...(nodeName === undefined ? {} : { nodeName }),
        containers: [{ name: 'db', image: 'postgres:17', volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }],
      },
    };
  }

  function webPod(hash: string, nodeName?: NodeName): V1Pod {
    return {
      metadata: { generateName: `web-${hash}-`, labels: { app: 'web', 'pod-template-hash': hash }, ownerReferences: replicaSetOwner(hash), annotations: { 'backup.arca.dev/backup-volumes': 'cache' } },
      spec: {
        ...(nodeName === undefined ? {} : { nodeName }),
        containers: [{ name: 'web', image: 'nginx:1', volumeMounts: [{ name: 'cache', mountPath: '/cache' }] }],
        volumes: [{ name: 'cache', emptyDir: {} }],
      },
    };
  }

  const dbDirs = (): VolumeDirs => ({ data: `kubernetes.io~csi/${pvName}/mount` });
  const webDirs: VolumeDirs = { cache: 'kubernetes.io~empty-dir/cache' };

  /** A database's files: nested directories, modes, old mtimes, a hard link, a symlink, a few MiB. */
  async function fillDatabase(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'base', '16384'), { recursive: true });
    await mkdir(path.join(dir, 'pg_wal'));
    await writeFile(path.join(dir, 'PG_VERSION'), '17\n');
    await writeFile(path.join(dir, 'base', '16384', '2619'), randomBytes(3 << 20));
    await writeFile(path.join(dir, 'pg_wal', '000000010000000000000001'), randomBytes(256 << 10));
    await writeFile(path.join(dir, 'postgresql.conf'), 'shared_buffers = 128MB\n');
    await link(path.join(dir, 'postgresql.conf'), path.join(dir, 'base', 'conf-link'));
    await symlink('../pg_wal', path.join(dir, 'base', 'wal'));
    await chmod(path.join(dir, 'base'), 0o700);
    await chmod(path.join(dir, 'postgresql.conf'), 0o600);
    await utimes(path.join(dir, 'PG_VERSION'), 1_600_000_000.25, 1_600_000_000.25);
    await utimes(path.join(dir, 'base', '16384'), 1_650_000_000, 1_650_000_000);
    await utimes(dir, 1_500_000_000, 1_500_000_000);
  }

  async function fillCache(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'thumbs'));
    for (let i = 0; i < 20; i++) await writeFile(path.join(dir, 'thumbs', `t-${i}.png`), randomBytes(1000 + i * 37));
    await writeFile(path.join(dir, 'index.html'), '<h1>cached</h1>\n');
    await chmod(path.join(dir, 'index.html'), 0o640);
    await utimes(path.join(dir, 'thumbs'), 1_700_000_000, 1_700_000_000);
  }

  async function startAgent(node: NodeName): Promise<void> {
    await mkdir(podsDir(node), { recursive: true });
    const agent = startArca(['agent', '--node', node, '--pods-dir', podsDir(node), '--cache-dir', path.join(root, node, 'cache'), '--namespace', arcaNs,
      '--kubeconfig', kubeTestEnv().kubeconfig, '--metrics-address', '127.0.0.1:0', '--cluster', 'journey']);
    agents.set(node, agent);
    await waitForLine(`agent ${node}`, agent, /"msg":"(started)"/, 60_000);
  }

  async function final<K extends typeof VolumeBackupKind | typeof VolumeRestoreKind>(client: ResourceClient<K>, name: string): ReturnType<ResourceClient<K>['get']> {
    return until(async () => {
      const object = await client.get(arcaNs, name);
      return FINAL.has(object.status?.phase ?? '') ? object : undefined;
    }, 200);
  }

  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(CoreV1Api);
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-journey-'));

    // Install: the CRDs as manifests/ has them; the controller and the agents run beside the API
    // server (nothing runs in pods here), the webhook reached at the controller's address.
    await installCrds(admin);
    arcaNs = await createTestNamespace(admin, 'system');
    appNs = await createTestNamespace(admin, 'shop');
    clients = {
      backups: new ResourceClient(admin, VolumeBackupKind, 'journey'),
      pvbs: new ResourceClient(admin, PodVolumeBackupKind, 'journey'),
      restores: new ResourceClient(admin, VolumeRestoreKind, 'journey'),
      pvrs: new ResourceClient(admin, PodVolumeRestoreKind, 'journey'),
    };
    const port = await freePort();
    await admin.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name: 'arca-restore' }).catch(() => undefined);
    webhookConfig = await createWebhookConfiguration(admin, port);
    controller = await startControllerProcess(controllerArgs(kubeTestEnv().kubeconfig, arcaNs, webhookConfig, port));
    for (const node of NODES) await startAgent(node);
  });

  afterAll(async () => {
    if (process.env.DEBUG_CONTROLLER !== undefined) console.log(controller.output());
    await Promise.all([controller.child, ...agents.values()].map((c) => stopChild(c)));
    await deleteWebhookConfiguration(admin, webhookConfig);
    await rm(root, { recursive: true, force: true });
  });

  test('journey 1: a repository with its Secret, an annotated app on two nodes, a VolumeBackup completed with the agents\' results', async () => {
    const repoDir = path.join(root, 'repository');
    await (await initRepository({ url: repoDir, password: PASSWORD, kdf: { fixedN: 1024 } })).close();
    await core.createNamespacedSecret({ namespace: arcaNs, body: { metadata: { name: 'repo-password' }, stringData: { password: PASSWORD } } });
    await new ResourceClient(admin, BackupRepositoryKind, 'journey').create(arcaNs, {
      metadata: { name: 'default' }, spec: { url: repoDir, passwordSecretRef: { name: 'repo-password', key: 'password' } },
    });

    // The app: a StatefulSet's database pod on a bound claim, a Deployment's web pod with an emptyDir.
    pvName = `pv-${appNs}-data-db-0`;
    await core.createPersistentVolume({ body: { metadata: { name: pvName }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], claimRef: { namespace: appNs, name: 'data-db-0' }, csi: { driver: 'test.csi.arca.dev', volumeHandle: 'db-0' } } } });
    await core.createNamespacedPersistentVolumeClaim({ namespace: appNs, body: { metadata: { name: 'data-db-0' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, volumeName: pvName } } });
    const db = await core.createNamespacedPod({ namespace: appNs, body: dbPod('node-a') });
    const web = await core.createNamespacedPod({ namespace: appNs, body: webPod('5d9f', 'node-b') });
    const dbVolumes = await mountVolumes('node-a', db, dbDirs());
    const webVolumes = await mountVolumes('node-b', web, webDirs);
    await fillDatabase(dbVolumes.data ?? '');
    await fillCache(webVolumes.cache ?? '');
    await setPhase(db, 'Running');
    await setPhase(web, 'Running');
    before.set('data', asObject(await scanTree(dbVolumes.data ?? '')));
    before.set('cache', asObject(await scanTree(webVolumes.cache ?? '')));

    await clients.backups.create(arcaNs, { metadata: { name: 'first' }, spec: { repository: 'default', includedNamespaces: [appNs] } });
    const done = await final(clients.backups, 'first');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2, partiallyFailed: 0, failed: 0, canceled: 0 } });
    const fileBytes = (scan: Record<string, ScannedEntry>) => Object.values(scan).reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0);
    // The hard link's bytes are read once per name.
    expect(done.status?.totals?.bytesProcessed).toBe(fileBytes(before.get('data') ?? {}) + fileBytes(before.get('cache') ?? {}));

    const pvbs = (await clients.pvbs.list(arcaNs, { labelSelector: `${BACKUP_SET_LABEL}=first` })).items;
    expect(pvbs.map((p) => ({ node: p.spec.node, pod: p.spec.pod.name, volume: p.spec.volume, phase: p.status?.phase, snapshot: /^[0-9a-f]{64}$/.test(p.status?.snapshotID ?? '') }))
      .sort((a, b) => a.volume.localeCompare(b.volume))).toEqual([
      { node: 'node-b', pod: web.metadata?.name, volume: 'cache', phase: 'Completed', snapshot: true },
      { node: 'node-a', pod: 'db-0', volume: 'data', phase: 'Completed', snapshot: true },
    ]);

    // What the operator sees.
    const { stdout } = await kubectl(['get', 'podvolumebackups', '-n', arcaNs, '-l', `${BACKUP_SET_LABEL}=first`, '-o', 'wide']);
    const [header, ...rows] = stdout.trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['NAME', 'PHASE', 'NODE', 'POD', 'VOLUME', 'PROGRESS', 'BYTES DONE', 'BYTES TOTAL', 'MESSAGE', 'AGE']);
    expect(rows.map((r) => r.split(/\s+/).slice(1, 6)).sort((a, b) => (a[3] ?? '').localeCompare(b[3] ?? ''))).toEqual([
      ['Completed', 'node-b', web.metadata?.name, 'cache', '100'],
      ['Completed', 'node-a', 'db-0', 'data', '100'],
    ]);
  });

  test('journey 2: the volumes are lost; a VolumeRestore; the app comes back with new pods held by arca-restore-wait until the agents restored every file', async () => {
    expect(before.size).toBe(2);
    // Disaster: the pods are gone and so is every byte of their volumes on both nodes.
    for (const pod of (await core.listNamespacedPod({ namespace: appNs })).items) {
      await core.deleteNamespacedPod({ namespace: appNs, name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(podsDir(node), { recursive: true });
      await mkdir(podsDir(node));
    }

    await clients.restores.create(arcaNs, { metadata: { name: 'after-disaster' }, spec: { volumeBackup: 'first' } });
    const restore = await until(async () => {
      const r = await clients.restores.get(arcaNs, 'after-disaster');
      return r.status?.phase === 'InProgress' ? r : undefined;
    });
    expect(restore.status?.targetNamespaces).toEqual([appNs]);
    // The webhook's caches catch up with the restore a moment after its status: dry runs until then.
    await until(async () => {
      const dry = await core.createNamespacedPod({ namespace: appNs, body: dbPod(), dryRun: 'All' });
      return dry.spec?.initContainers?.[0]?.name === RESTORE_INIT_CONTAINER ? true : undefined;
    });

    // The app is applied again: the StatefulSet's pod (same name, new UID) and a new ReplicaSet's
    // pod (a new generated name), not yet scheduled.
    const db = await core.createNamespacedPod({ namespace: appNs, body: dbPod() });
    const web = await core.createNamespacedPod({ namespace: appNs, body: webPod('77aa') });
    const restoreUid = restore.metadata.uid ?? '';
    for (const [pod, volume] of [[db, 'data'], [web, 'cache']] as const) {
      const init = pod.spec?.initContainers ?? [];
      expect(init.map((c) => c.name)).toEqual([RESTORE_INIT_CONTAINER]);
      expect(init[0]).toMatchObject({
        args: ['restore-wait', '--restore-uid', restoreUid, `/arca-restore/${volume}`],
        volumeMounts: [{ name: volume, mountPath: `/arca-restore/${volume}` }],
      });
      expect(pod.metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('after-disaster');
    }
    expect(web.metadata?.name).toMatch(/^web-77aa-/);

    // Scheduled, each to the other node than before; that node's kubelet mounts the (empty)
    // volumes, then starts the init container: restore-wait with the injected args, its mounts
    // being the node's directories, and reports it running.
    const placed = [{ pod: db, node: 'node-b' as const, dirs: dbDirs() }, { pod: web, node: 'node-a' as const, dirs: webDirs }];
    const waiting: Promise<RunResult>[] = [];
    const restoredDirs = new Map<string, string>();
    for (const { pod, node, dirs } of placed) {
      const name = pod.metadata?.name ?? '';
      await core.createNamespacedPodBinding({ namespace: appNs, name, body: { metadata: { name }, target: { kind: 'Node', name: node } } });
      const mounted = await mountVolumes(node, pod, dirs);
      for (const [volume, dir] of Object.entries(mounted)) restoredDirs.set(volume, dir);
      const init = pod.spec?.initContainers?.[0];
      const hostPathOf = new Map((init?.volumeMounts ?? []).map((m) => [m.mountPath, mounted[m.name] ?? '']));
      waiting.push(runArca((init?.args ?? []).map((arg) => hostPathOf.get(arg) ?? arg)));
      await setPhase(pod, 'Pending', [RESTORE_INIT_CONTAINER]);
    }

    const pvrs = await until(async () => {
      const list = (await clients.pvrs.list(arcaNs, { labelSelector: `${RESTORE_NAMESPACE_LABEL}=after-disaster` })).items;
      return list.length === 2 ? list : undefined;
    });
    expect(pvrs.map((p) => ({ node: p.spec.node, pod: p.spec.pod.name, uid: p.spec.pod.uid, volume: p.spec.volume })).sort((a, b) => a.volume.localeCompare(b.volume))).toEqual([
      { node: 'node-a', pod: web.metadata?.name, uid: web.metadata?.uid, volume: 'cache' },
      { node: 'node-b', pod: 'db-0', uid: db.metadata?.uid, volume: 'data' },
    ]);

    // The init containers exit 0 once their volumes are back.
    for (const result of await Promise.all(waiting)) {
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'arca restore-wait: 1 volume restored\n' });
    }
    const done = await final(clients.restores, 'after-disaster');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2, partiallyFailed: 0, failed: 0 } });

    // Every file is back, byte for byte, with its modes, owners and times; no marker is left.
    for (const [volume, scan] of before) {
      expect(asObject(await scanTree(restoredDirs.get(volume) ?? '')), volume).toEqual(scan);
    }
    // The restore is over: new pods in the namespace are no longer held.
    await until(async () => ((await core.readNamespace({ name: appNs })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL] === undefined ? true : undefined));
  });
});
