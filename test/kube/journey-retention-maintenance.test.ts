import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BatchV1Api } from '@kubernetes/client-node';
import { describe, expect, test } from 'vitest';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { arcaOk } from '../support/cli.ts';
import { until } from '../support/controller-process.ts';
import { createTestNamespace, kubeAvailable } from '../support/control-plane.ts';
import { restoreApp, scanVolumes, writeToDatabase } from '../support/journey-app.ts';
import { appOnS3ForSuite } from '../support/journey-fixture.ts';
import { final } from '../support/simulated-cluster.ts';

// Journey 4: backups on a schedule while the data changes, retention keeping what the policy says,
// and a maintenance Job (prune, then check) run while another backup is in the middle of writing,
// against an S3 repository (s3rver behind a fault proxy that can hold one request). Every Arca
// process is real; support/simulated-cluster.ts plays the kubelet, for pods and for the Job.

const PASSWORD = 'journey4-password';
const RUNS = 4;

interface ListedSnapshot {
  id: string;
  labels?: Record<string, string>;
}

describe.skipIf(!kubeAvailable)('journey 4: scheduled backups with retention, maintenance while a backup runs', () => {
  const setting = appOnS3ForSuite('journey4', PASSWORD, 4);

  const snapshots = async (): Promise<ListedSnapshot[]> => JSON.parse((await arcaOk(['snapshots', '--json'], { env: setting().repo.cliEnv })).stdout) as ListedSnapshot[];
  const backupsOf = async (schedule: string) => (await setting().cluster.backups.list(setting().cluster.namespace, { labelSelector: `arca.dev/schedule=${schedule}` })).items
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));

  test(`${RUNS} scheduled runs while the database writes; retention keeps the newest 2 snapshots of each volume and their VolumeBackups`, async () => {
    const { cluster, ...env } = setting();
    const ns = cluster.namespace;
    await cluster.schedules.create(ns, { metadata: { name: 'hourly' }, spec: { schedule: '*/4 * * * * *', repository: 's3', includedNamespaces: [env.appNs], retention: { keepLast: 2 } } });
    // The database writes after each run, so every run has something new.
    const completed: string[] = [];
    while (completed.length < RUNS) {
      const next = await until(async () => (await backupsOf('hourly')).find((b) => !completed.includes(b.metadata.name ?? ''))?.metadata.name);
      const done = await final(cluster.backups, ns, next);
      expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
      completed.push(next);
      if (completed.length < RUNS) await writeToDatabase(env.app.volumes.data ?? '', completed.length);
    }
    await cluster.schedules.mergePatch(ns, 'hourly', { spec: { paused: true } });
    // The last run (a slot may have started before the pause) is final and retention ran after it.
    const last = await until(async () => {
      const runs = await backupsOf('hourly');
      const newest = runs.at(-1);
      if (newest?.status?.completionTimestamp === undefined) return undefined;
      const schedule = await cluster.schedules.get(ns, 'hourly');
      return Date.parse(schedule.status?.lastRetentionTime ?? '') >= Date.parse(newest.status.completionTimestamp) ? runs : undefined;
    });
    expect(last.length).toBeGreaterThanOrEqual(2);

    // In the repository: per volume, the snapshots of the two newest runs; the objects of the rest are gone.
    const kept = last.slice(-2).map((b) => b.metadata.name ?? '');
    await until(async () => ((await backupsOf('hourly')).length === 2 ? true : undefined));
    expect((await backupsOf('hourly')).map((b) => b.metadata.name)).toEqual(kept);
    const sets = (await snapshots()).map((s) => `${s.labels?.[BACKUP_SET_LABEL] ?? ''} ${s.labels?.['arca.dev/volume'] ?? ''}`).sort();
    expect(sets).toEqual(kept.flatMap((set) => [`${set} cache`, `${set} data`]));
  });

  test('maintenance: prune and check run as the repository\'s Job while a backup is held mid-write; nothing is lost; the repository checks clean; the backup restores byte for byte', async () => {
    const { cluster, ...env } = setting();
    const ns = cluster.namespace;
    // New data, so the held backup has packs of its own in the repository before its snapshot.
    await writeFile(path.join(env.app.volumes.data ?? '', 'base', '16384', '2620'), randomBytes(2 << 20));
    const expected = await scanVolumes(env.app.volumes);

    // A backup held just before it writes a snapshot: its packs and index are stored, nothing refers to them yet.
    const held = env.proxy.hold((method, url) => method === 'PUT' && url.includes('/snapshots/'));
    await cluster.backups.create(ns, { metadata: { name: 'during-maintenance' }, spec: { repository: 's3', includedNamespaces: [env.appNs] } });
    await held.reached;

    // Maintenance due now: the controller makes the slot's Job; the node runs it (prune, then check).
    const batch = cluster.admin.makeApiClient(BatchV1Api);
    await cluster.repositories.mergePatch(ns, 's3', { spec: { maintenance: { schedule: '* * * * * *', checkReadDataSubset: '100%', pruneMaxUnusedPercent: 0 } } });
    const job = await until(async () => (await batch.listNamespacedJob({ namespace: ns, labelSelector: 'arca.dev/maintenance=s3' })).items[0]);
    await cluster.repositories.mergePatch(ns, 's3', { spec: { maintenance: { paused: true } } });
    const ran = await cluster.runJob(job);
    expect(ran.map(({ name, result }) => ({ name, code: result.code })), ran.map((r) => r.result.stderr).join('\n')).toEqual([{ name: 'prune', code: 0 }, { name: 'check', code: 0 }]);

    // The held backup carries on and completes.
    held.release();
    const done = await final(cluster.backups, ns, 'during-maintenance');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });

    // The next prune finishes what the first one planned; then every byte of the repository is read and checked.
    await arcaOk(['prune'], { env: env.repo.cliEnv });
    await arcaOk(['check', '--read-data'], { env: env.repo.cliEnv });

    // The backup made during maintenance restores, into a new namespace, byte for byte.
    const restoredNs = await createTestNamespace(cluster.admin, 'shop-restored');
    const restored = await restoreApp(cluster, 'after-maintenance', { volumeBackup: 'during-maintenance', namespaceMapping: { [env.appNs]: restoredNs } }, restoredNs, { db: 'node-b', web: 'node-a' });
    expect(restored.initContainers.map((r) => r.code), restored.initContainers.map((r) => r.stderr).join('\n')).toEqual([0, 0]);
    expect(restored.restore.status, restored.restore.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    expect(Object.fromEntries(restored.trees)).toEqual(Object.fromEntries(expected));
  });
});
