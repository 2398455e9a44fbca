import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { initRepository } from '../../engine/index.ts';
import { BACKUP_SET_LABEL, RESTORE_INIT_CONTAINER, RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { installCrds } from '../support/arca-kube.ts';
import { until } from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv, kubectl } from '../support/control-plane.ts';
import { asObject, scanTree, type ScannedEntry } from '../support/fs-tree.ts';
import { deployApp, reapplyApp, scanVolumes, startRestore } from '../support/journey-app.ts';
import { final, SimulatedCluster } from '../support/simulated-cluster.ts';

// The operator's first two journeys with every Arca process real: the controller (and its restore
// webhook, called by the API server), one agent per simulated node, and `arca restore-wait` as the
// injected init container runs it (support/simulated-cluster.ts plays the kubelet).

const PASSWORD = 'journey-password';
const NODES = ['node-a', 'node-b'];

describe.skipIf(!kubeAvailable)('journeys 1 and 2: install, first backup, disaster, restore in place', () => {
  let cluster: SimulatedCluster;
  let appNs: string;
  let root: string;
  /** What the backed-up volumes held, by volume name, scanned before the disaster. */
  const before = new Map<string, Record<string, ScannedEntry>>();

  beforeAll(async () => {
    const admin = adminKubeConfig();
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-journey-'));
    await installCrds(admin);
    const arcaNs = await createTestNamespace(admin, 'system');
    appNs = await createTestNamespace(admin, 'shop');
    cluster = new SimulatedCluster(admin, { kubeconfig: kubeTestEnv().kubeconfig, root, namespace: arcaNs, cluster: 'journey' });
    await cluster.install(NODES);
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`What Arca's processes said:\n${cluster.report()}`);
  });

  afterAll(async () => {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('journey 1: a repository with its Secret, an annotated app on two nodes, a VolumeBackup completed with the agents\' results', async () => {
    const arcaNs = cluster.namespace;
    const repoDir = path.join(root, 'repository');
    await (await initRepository({ url: repoDir, password: PASSWORD, kdf: { fixedN: 1024 } })).close();
    await cluster.addRepository('default', PASSWORD, { url: repoDir });

    // The app: a StatefulSet's database pod on a bound claim, a Deployment's web pod with an emptyDir.
    const app = await deployApp(cluster, appNs, { db: 'node-a', web: 'node-b' });
    for (const [volume, tree] of await scanVolumes(app.volumes)) before.set(volume, tree);

    await cluster.backups.create(arcaNs, { metadata: { name: 'first' }, spec: { repository: 'default', includedNamespaces: [appNs] } });
    const done = await final(cluster.backups, arcaNs, 'first');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2, partiallyFailed: 0, failed: 0, canceled: 0 } });
    const fileBytes = (scan: Record<string, ScannedEntry>) => Object.values(scan).reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0);
    // The hard link's bytes are read once per name.
    expect(done.status?.totals?.bytesProcessed).toBe(fileBytes(before.get('data') ?? {}) + fileBytes(before.get('cache') ?? {}));

    const webName = app.web.metadata?.name;
    const pvbs = (await cluster.pvbs.list(arcaNs, { labelSelector: `${BACKUP_SET_LABEL}=first` })).items;
    expect(pvbs.map((p) => ({ node: p.spec.node, pod: p.spec.pod.name, volume: p.spec.volume, phase: p.status?.phase, snapshot: /^[0-9a-f]{64}$/.test(p.status?.snapshotID ?? '') }))
      .sort((a, b) => a.volume.localeCompare(b.volume))).toEqual([
      { node: 'node-b', pod: webName, volume: 'cache', phase: 'Completed', snapshot: true },
      { node: 'node-a', pod: 'db-0', volume: 'data', phase: 'Completed', snapshot: true },
    ]);

    // What the operator sees.
    const { stdout } = await kubectl(['get', 'podvolumebackups', '-n', arcaNs, '-l', `${BACKUP_SET_LABEL}=first`, '-o', 'wide']);
    const [header, ...rows] = stdout.trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['NAME', 'PHASE', 'NODE', 'POD', 'VOLUME', 'PROGRESS', 'BYTES DONE', 'BYTES TOTAL', 'MESSAGE', 'AGE']);
    expect(rows.map((r) => r.split(/\s+/).slice(1, 6)).sort((a, b) => (a[3] ?? '').localeCompare(b[3] ?? ''))).toEqual([
      ['Completed', 'node-b', webName, 'cache', '100'],
      ['Completed', 'node-a', 'db-0', 'data', '100'],
    ]);
  });

  test('journey 2: the volumes are lost; a VolumeRestore; the app comes back with new pods held by arca-restore-wait until the agents restored every file', async () => {
    expect(before.size).toBe(2);
    const arcaNs = cluster.namespace;
    // Disaster: the pods are gone and so is every byte of their volumes on both nodes.
    for (const pod of (await cluster.core.listNamespacedPod({ namespace: appNs })).items) {
      await cluster.core.deleteNamespacedPod({ namespace: appNs, name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(cluster.podsDir(node), { recursive: true });
      await mkdir(cluster.podsDir(node));
    }

    const restore = await startRestore(cluster, 'after-disaster', { volumeBackup: 'first' }, appNs);
    expect(restore.status?.targetNamespaces).toEqual([appNs]);

    // The app is applied again, each pod scheduled to the other node than before.
    const app = await reapplyApp(cluster, appNs, { db: 'node-b', web: 'node-a' }, '77aa');
    const restoreUid = restore.metadata.uid ?? '';
    for (const [pod, volume] of [[app.db, 'data'], [app.web, 'cache']] as const) {
      const init = pod.spec?.initContainers ?? [];
      expect(init.map((c) => c.name)).toEqual([RESTORE_INIT_CONTAINER]);
      expect(init[0]).toMatchObject({
        args: ['restore-wait', '--restore-uid', restoreUid, `/arca-restore/${volume}`],
        volumeMounts: [{ name: volume, mountPath: `/arca-restore/${volume}` }],
      });
      expect(pod.metadata?.labels?.[RESTORE_NAMESPACE_LABEL]).toBe('after-disaster');
    }
    expect(app.web.metadata?.name).toMatch(/^web-77aa-/);

    const pvrs = await until(async () => {
      const list = (await cluster.pvrs.list(arcaNs, { labelSelector: `${RESTORE_NAMESPACE_LABEL}=after-disaster` })).items;
      return list.length === 2 ? list : undefined;
    });
    expect(pvrs.map((p) => ({ node: p.spec.node, pod: p.spec.pod.name, uid: p.spec.pod.uid, volume: p.spec.volume })).sort((a, b) => a.volume.localeCompare(b.volume))).toEqual([
      { node: 'node-a', pod: app.web.metadata?.name, uid: app.web.metadata?.uid, volume: 'cache' },
      { node: 'node-b', pod: 'db-0', uid: app.db.metadata?.uid, volume: 'data' },
    ]);

    // The init containers exit 0 once their volumes are back.
    for (const result of await app.initContainers) {
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'arca restore-wait: 1 volume restored\n' });
    }
    const done = await final(cluster.restores, arcaNs, 'after-disaster');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2, partiallyFailed: 0, failed: 0 } });

    // Every file is back, byte for byte, with its modes, owners and times; no marker is left.
    for (const [volume, scan] of before) {
      expect(asObject(await scanTree(app.volumes.get(volume) ?? '')), volume).toEqual(scan);
    }
    // The restore is over: new pods in the namespace are no longer held.
    await until(async () => ((await cluster.core.readNamespace({ name: appNs })).metadata?.labels?.[RESTORE_NAMESPACE_LABEL] === undefined ? true : undefined));
  });
});
