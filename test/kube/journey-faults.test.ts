import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { BACKUP_SET_LABEL, RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { installCrds } from '../support/arca-kube.ts';
import { arcaOk } from '../support/cli.ts';
import { until } from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import {
  createDatabaseClaim, dbPod, fillCache, fillDatabase, reapplyApp, restoreApp, s3Repository, scanVolumes, startRestore, webDirs, webPod,
} from '../support/journey-app.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { final, SimulatedCluster } from '../support/simulated-cluster.ts';

// Journey 5: faults. Storage that fails 10% of requests and both agents killed mid-backup; the
// controller killed mid-restore; a wrong password; a restore whose data was corrupted. Every Arca
// process is real; the S3 repository (s3rver) is reached through a fault proxy.

const PASSWORD = 'journey5-password';
const NODES = ['node-a', 'node-b'];

describe.skipIf(!kubeAvailable)('journey 5: faults', () => {
  let cluster: SimulatedCluster;
  let s3: S3Server;
  let proxy: FaultProxy;
  let repo: ReturnType<typeof s3Repository>;
  let appNs: string;
  let root: string;
  let volumes: Record<string, string>;

  const snapshotCount = async (): Promise<number> => (JSON.parse((await arcaOk(['snapshots', '--json'], { env: repo.cliEnv })).stdout) as unknown[]).length;

  beforeAll(async () => {
    const admin = adminKubeConfig();
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-journey5-'));
    s3 = await startS3Server();
    proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: 0, seed: 5 });
    repo = s3Repository(proxy.endpoint, s3.bucket, 'shop', PASSWORD);
    await arcaOk(['init'], { env: repo.cliEnv });
    await installCrds(admin);
    cluster = new SimulatedCluster(admin, { kubeconfig: kubeTestEnv().kubeconfig, root, namespace: await createTestNamespace(admin, 'system'), cluster: 'journey5' });
    await cluster.install(NODES);
    await cluster.addRepository('s3', PASSWORD, repo.spec, repo.credentials);
    appNs = await createTestNamespace(admin, 'shop');
    const db = await cluster.runPod(appNs, 'node-a', dbPod(), await createDatabaseClaim(cluster.core, appNs));
    const web = await cluster.runPod(appNs, 'node-b', webPod('5d9f'), webDirs);
    volumes = { ...db.volumes, ...web.volumes };
    await fillDatabase(volumes.data ?? '');
    await fillCache(volumes.cache ?? '');
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`What Arca's processes said:\n${cluster.report()}\n${s3.health()}\n${JSON.stringify(proxy.stats())}`);
  });

  afterAll(async () => {
    await cluster.stop();
    await proxy.stop();
    await s3.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('10% of storage requests fail and both agents are killed mid-backup: restarted, they finish it; the repository checks clean', async () => {
    const ns = cluster.namespace;
    proxy.setFaultRate(0.1);
    // Both agents die while one of them is uploading a pack.
    const held = proxy.hold((method, url) => method === 'PUT' && url.includes('/data/'));
    await cluster.backups.create(ns, { metadata: { name: 'under-faults' }, spec: { repository: 's3', includedNamespaces: [appNs] } });
    await held.reached;
    for (const node of NODES) await cluster.stopAgent(node, 'SIGKILL');
    held.release();
    for (const node of NODES) await cluster.startAgent(node);

    const done = await final(cluster.backups, ns, 'under-faults');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    const pvbs = (await cluster.pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=under-faults` })).items;
    expect(Math.max(...pvbs.map((p) => p.status?.attempts ?? 0))).toBeGreaterThanOrEqual(2);
    proxy.setFaultRate(0);
    const { faults } = proxy.stats();
    expect(faults.slowDown + faults.reset + faults.truncate).toBeGreaterThan(0);
    await arcaOk(['check', '--read-data'], { env: repo.cliEnv });
  });

  test('the controller is killed mid-restore: the next one finishes the restore; every file is back', async () => {
    const ns = cluster.namespace;
    const expected = await scanVolumes(volumes);
    for (const pod of (await cluster.core.listNamespacedPod({ namespace: appNs })).items) {
      await cluster.core.deleteNamespacedPod({ namespace: appNs, name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(cluster.podsDir(node), { recursive: true });
      await mkdir(cluster.podsDir(node));
    }
    await startRestore(cluster, 'leader-lost', { volumeBackup: 'under-faults' }, appNs);
    const app = await reapplyApp(cluster, appNs, { db: 'node-b', web: 'node-a' }, 'a1b2');
    // Once the agents have their PodVolumeRestores, the controller dies (SIGKILL: its Lease is not released).
    await until(async () => ((await cluster.pvrs.list(ns, { labelSelector: `${RESTORE_NAMESPACE_LABEL}=leader-lost` })).items.length === 2 ? true : undefined));
    await cluster.stopController('SIGKILL');
    await cluster.startController();

    expect((await app.initContainers).map((r) => r.code)).toEqual([0, 0]);
    const done = await final(cluster.restores, ns, 'leader-lost');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    volumes = Object.fromEntries(app.volumes);
    expect(Object.fromEntries(await scanVolumes(volumes))).toEqual(Object.fromEntries(expected));
  });

  test('a wrong password: the repository is NotReady saying so, a backup on it fails with the reason, nothing is written', async () => {
    const ns = cluster.namespace;
    const before = await snapshotCount();
    await cluster.addRepository('wrong', 'not-the-password', repo.spec, repo.credentials);
    const status = await until(async () => {
      const s = (await cluster.repositories.get(ns, 'wrong')).status;
      return s?.phase === 'NotReady' ? s : undefined;
    });
    expect(status.message).toMatch(/password/i);
    await cluster.backups.create(ns, { metadata: { name: 'wrong-password' }, spec: { repository: 'wrong', includedNamespaces: [appNs] } });
    const done = await final(cluster.backups, ns, 'wrong-password');
    expect(done.status?.phase).toBe('Failed');
    const pvbs = (await cluster.pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=wrong-password` })).items;
    expect(pvbs.map((p) => p.status?.message ?? '').join('\n')).toMatch(/password/i);
    expect(await snapshotCount()).toBe(before);
  });

  test('a restore whose data was corrupted in storage: arca-restore-wait exits 1 with the reason, the restore fails, no pod waits', async () => {
    // Every pack of the repository overwritten with random bytes of the same size.
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const packs = (await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'shop/data/' }))).Contents ?? [];
    expect(packs.length).toBeGreaterThan(0);
    for (const pack of packs) await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: pack.Key, Body: randomBytes(pack.Size ?? 0) }));
    client.destroy();

    const restoredNs = await createTestNamespace(cluster.admin, 'shop-corrupt');
    const restored = await restoreApp(cluster, 'from-corrupt', { volumeBackup: 'under-faults', namespaceMapping: { [appNs]: restoredNs } }, restoredNs, { db: 'node-a', web: 'node-b' });
    for (const result of restored.initContainers) {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^arca restore-wait: restoring .+ failed: \d+ files or directories of snapshot [0-9a-f]{8} could not be restored; see the agent's log\.\n$/);
    }
    // Directories whose metadata is intact come back; the files do not: no volume is Completed.
    expect(restored.restore.status?.phase).toMatch(/^(PartiallyFailed|Failed)$/);
    expect(restored.restore.status?.volumes).toMatchObject({ total: 2, completed: 0 });
  });
});

