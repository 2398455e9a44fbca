import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { findControlPlaneBinaries, kubeCacheDir, startControlPlane, type ControlPlane } from '../../scripts/kube/control-plane.ts';
import { arcaOk } from '../support/cli.ts';
import { kubeAvailable } from '../support/control-plane.ts';
import { restoreApp, scanVolumes } from '../support/journey-app.ts';
import { NODES, startAppOnS3, type AppOnS3 } from '../support/journey-fixture.ts';
import { final } from '../support/simulated-cluster.ts';

// Journey 5, the API server restarted mid-backup: on a control plane of its own (the run's shared
// one must not go away under the other files), kube-apiserver is killed while an agent uploads and
// started again on the same etcd, port and keys. The agents and the controller find their watches
// broken, reconnect, and the backup set completes; a restore of it gives every file back.

const PASSWORD = 'journey5-apiserver';

describe.skipIf(!kubeAvailable)('journey 5: the API server restarted mid-backup', () => {
  let dir: string;
  let plane: ControlPlane;
  let setting: AppOnS3 | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'arca-apiserver-restart-'));
    plane = await startControlPlane({ dir: path.join(dir, 'control-plane'), binaries: await findControlPlaneBinaries(kubeCacheDir(process.env)) });
    // The controller's test Lease (2 s) runs out while the server is away; it exits, and its pod restarts.
    setting = await startAppOnS3('apiserver-restart', PASSWORD, 7, plane.kubeconfig, true);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(setting?.report());
  });
  afterAll(async () => {
    await setting?.stop();
    await plane.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('kube-apiserver killed and restarted while an agent uploads: the backup set completes and restores every file', async () => {
    const { cluster, proxy, repo, app, appNs } = setting as AppOnS3;
    const ns = cluster.namespace;
    const expected = await scanVolumes(app.volumes);
    const pidBefore = plane.processes.find((p) => p.name === 'kube-apiserver')?.pid;
    // The API server goes away while an agent is in the middle of a volume: one of its uploads is held.
    const held = proxy.hold((method, url) => method === 'PUT' && url.includes('/data/'));
    await cluster.backups.create(ns, { metadata: { name: 'across-restart' }, spec: { repository: 's3', includedNamespaces: [appNs] } });
    await held.reached;
    await plane.restartApiServer();
    expect(plane.processes.find((p) => p.name === 'kube-apiserver')?.pid).not.toBe(pidBefore);
    held.release();

    const done = await final(cluster.backups, ns, 'across-restart');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    const pvbs = (await cluster.pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=across-restart` })).items;
    expect(pvbs.map((p) => p.status?.phase)).toEqual(['Completed', 'Completed']);
    await arcaOk(['check', '--read-data'], { env: repo.cliEnv });

    // The namespace's pods and their node directories gone; the app restored from that backup set.
    for (const pod of (await cluster.core.listNamespacedPod({ namespace: appNs })).items) {
      await cluster.core.deleteNamespacedPod({ namespace: appNs, name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(cluster.podsDir(node), { recursive: true });
      await mkdir(cluster.podsDir(node));
    }
    const restored = await restoreApp(cluster, 'after-restart', { volumeBackup: 'across-restart' }, appNs, { db: 'node-b', web: 'node-a' });
    expect(restored.restore.status, restored.restore.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    expect(restored.initContainers.map((r) => r.code)).toEqual([0, 0]);
    expect(Object.fromEntries(restored.trees)).toEqual(Object.fromEntries(expected));
  }, 300_000);
});
