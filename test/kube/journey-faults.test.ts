import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, test } from 'vitest';
import { BACKUP_SET_LABEL, RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { arcaOk } from '../support/cli.ts';
import { until } from '../support/controller-process.ts';
import { createTestNamespace, kubeAvailable } from '../support/control-plane.ts';
import { reapplyApp, restoreApp, scanVolumes, startRestore } from '../support/journey-app.ts';
import { appOnS3ForSuite, NODES } from '../support/journey-fixture.ts';
import { final } from '../support/simulated-cluster.ts';

// Journey 5: faults. Storage that fails 10% of requests and both agents killed mid-backup; the
// controller killed mid-restore; a wrong password; a restore whose data was corrupted. Every Arca
// process is real; the S3 repository (s3rver) is reached through a fault proxy.

const PASSWORD = 'journey5-password';

describe.skipIf(!kubeAvailable)('journey 5: faults', () => {
  const setting = appOnS3ForSuite('journey5', PASSWORD, 5);

  const snapshotCount = async (): Promise<number> => (JSON.parse((await arcaOk(['snapshots', '--json'], { env: setting().repo.cliEnv })).stdout) as unknown[]).length;

  test('10% of storage requests fail and both agents are killed mid-backup: restarted, they finish it; the repository checks clean', async () => {
    const { cluster, ...env } = setting();
    const ns = cluster.namespace;
    env.proxy.setFaultRate(0.1);
    // Both agents die while one of them is uploading a pack.
    const held = env.proxy.hold((method, url) => method === 'PUT' && url.includes('/data/'));
    await cluster.backups.create(ns, { metadata: { name: 'under-faults' }, spec: { repository: 's3', includedNamespaces: [env.appNs] } });
    await held.reached;
    for (const node of NODES) await cluster.stopAgent(node, 'SIGKILL');
    held.release();
    for (const node of NODES) await cluster.startAgent(node);

    const done = await final(cluster.backups, ns, 'under-faults');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    const pvbs = (await cluster.pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=under-faults` })).items;
    expect(Math.max(...pvbs.map((p) => p.status?.attempts ?? 0))).toBeGreaterThanOrEqual(2);
    env.proxy.setFaultRate(0);
    const { faults } = env.proxy.stats();
    expect(faults.slowDown + faults.reset + faults.truncate).toBeGreaterThan(0);
    await arcaOk(['check', '--read-data'], { env: env.repo.cliEnv });
  });

  test('the controller is killed mid-restore: the next one finishes the restore; every file is back', async () => {
    const { cluster, ...env } = setting();
    const ns = cluster.namespace;
    const expected = await scanVolumes(env.app.volumes);
    for (const pod of (await cluster.core.listNamespacedPod({ namespace: env.appNs })).items) {
      await cluster.core.deleteNamespacedPod({ namespace: env.appNs, name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(cluster.podsDir(node), { recursive: true });
      await mkdir(cluster.podsDir(node));
    }
    await startRestore(cluster, 'leader-lost', { volumeBackup: 'under-faults' }, env.appNs);
    const app = await reapplyApp(cluster, env.appNs, { db: 'node-b', web: 'node-a' }, 'a1b2');
    // Once the agents have their PodVolumeRestores, the controller dies (SIGKILL: its Lease is not released).
    await until(async () => ((await cluster.pvrs.list(ns, { labelSelector: `${RESTORE_NAMESPACE_LABEL}=leader-lost` })).items.length === 2 ? true : undefined));
    await cluster.stopController('SIGKILL');
    await cluster.startController();

    expect((await app.initContainers).map((r) => r.code)).toEqual([0, 0]);
    const done = await final(cluster.restores, ns, 'leader-lost');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    expect(Object.fromEntries(await scanVolumes(Object.fromEntries(app.volumes)))).toEqual(Object.fromEntries(expected));
  });

  test('a wrong password: the repository is NotReady saying so, a backup on it fails with the reason, nothing is written', async () => {
    const { cluster, ...env } = setting();
    const ns = cluster.namespace;
    const before = await snapshotCount();
    await cluster.addRepository('wrong', 'not-the-password', env.repo.spec, env.repo.credentials);
    const status = await until(async () => {
      const s = (await cluster.repositories.get(ns, 'wrong')).status;
      return s?.phase === 'NotReady' ? s : undefined;
    });
    expect(status.message).toMatch(/password/i);
    await cluster.backups.create(ns, { metadata: { name: 'wrong-password' }, spec: { repository: 'wrong', includedNamespaces: [env.appNs] } });
    const done = await final(cluster.backups, ns, 'wrong-password');
    expect(done.status?.phase).toBe('Failed');
    const pvbs = (await cluster.pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=wrong-password` })).items;
    expect(pvbs.map((p) => p.status?.message ?? '').join('\n')).toMatch(/password/i);
    expect(await snapshotCount()).toBe(before);
  });

  test('a restore whose data was corrupted in storage: arca-restore-wait exits 1 with the reason, the restore fails, no pod waits', async () => {
    const { cluster, ...env } = setting();
    // Every pack of the repository overwritten with random bytes of the same size.
    const client = new S3Client({ endpoint: env.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey } });
    const packs = (await client.send(new ListObjectsV2Command({ Bucket: env.s3.bucket, Prefix: 'shop/data/' }))).Contents ?? [];
    expect(packs.length).toBeGreaterThan(0);
    for (const pack of packs) await client.send(new PutObjectCommand({ Bucket: env.s3.bucket, Key: pack.Key, Body: randomBytes(pack.Size ?? 0) }));
    client.destroy();

    const restoredNs = await createTestNamespace(cluster.admin, 'shop-corrupt');
    const restored = await restoreApp(cluster, 'from-corrupt', { volumeBackup: 'under-faults', namespaceMapping: { [env.appNs]: restoredNs } }, restoredNs, { db: 'node-a', web: 'node-b' });
    for (const result of restored.initContainers) {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^arca restore-wait: restoring .+ failed: \d+ files or directories of snapshot [0-9a-f]{8} could not be restored; see the agent's log\.\n$/);
    }
    // Directories whose metadata is intact come back; the files do not: no volume is Completed.
    expect(restored.restore.status?.phase).toMatch(/^(PartiallyFailed|Failed)$/);
    expect(restored.restore.status?.volumes).toMatchObject({ total: 2, completed: 0 });
  });
});

