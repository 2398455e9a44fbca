import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backupVolume, forgetSnapshots, initRepository, openRepository, type Repository } from '../../engine/index.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, VolumeBackupKind, VolumeBackupScheduleKind, type BackupRepository } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { snapshotLabels } from '../../repository-access/snapshot-labels.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild } from '../support/child-process.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until, type ControllerProcess,
} from '../support/controller-process.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { SMALL_REPO } from '../storage-wrappers/helpers.ts';

// BackupRepositories against the real API server and a real local repository written with the
// engine's door: checks (Ready/NotReady and why), retention after a schedule run, sync into a
// second "cluster" (another controller namespace) that sees the repository read-only.

const PASSWORD = 'correct horse';
const DAY = 86_400_000;

describe.skipIf(!kubeAvailable)('arca controller: repositories, retention and sync', () => {
  let admin: KubeConfig;
  let core: CoreV1Api;
  let work: string;
  let repoDir: string;
  let repo: Repository;
  let s3: S3Server;
  const children: ChildProcess[] = [];
  const webhookConfigs: string[] = [];
  let repositories: ResourceClient<typeof BackupRepositoryKind>;
  let backups: ResourceClient<typeof VolumeBackupKind>;
  let pvbs: ResourceClient<typeof PodVolumeBackupKind>;
  let schedules: ResourceClient<typeof VolumeBackupScheduleKind>;

  /** A controller of its own namespace ("cluster"), checking repositories every second. */
  async function startController(namespace: string): Promise<ControllerProcess> {
    const port = await freePort();
    const config = await createWebhookConfiguration(admin, port);
    webhookConfigs.push(config);
    const controller = await startControllerProcess([
      ...controllerArgs(kubeTestEnv().kubeconfig, namespace, config, port),
      '--repository-check-period', '1s', '--cache-dir', path.join(work, `cache-${namespace}`),
    ], { POD_NAME: `ctl-${namespace}` });
    children.push(controller.child);
    return controller;
  }

  async function passwordSecret(namespace: string, name: string, password: string): Promise<void> {
    await core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: { password } } });
  }

  async function setPassword(namespace: string, password: string): Promise<void> {
    const secret = await core.readNamespacedSecret({ namespace, name: 'repo' });
    await core.replaceNamespacedSecret({ namespace, name: 'repo', body: { metadata: secret.metadata, data: { password: Buffer.from(password).toString('base64') } } });
  }

  const phaseOf = async (namespace: string, name: string) => (await repositories.get(namespace, name)).status;
  const untilPhase = (namespace: string, name: string, phase: 'Ready' | 'NotReady') => until(async () => {
    const status = await phaseOf(namespace, name);
    return status?.phase === phase ? status : undefined;
  });

  /** A snapshot of one volume of a pod, taken "at" `time`, in backup set `set`. */
  async function snapshotAt(set: string, pvc: string, time: Date): Promise<string> {
    const dir = path.join(work, 'volumes', pvc);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'data.txt'), `${pvc} at ${time.toISOString()}\n`);
    const pod = `db-${pvc.slice(-1)}`;
    const outcome = await backupVolume(repo, dir, {
      time, workers: 1, host: 'node-a',
      labels: snapshotLabels({ cluster: 'one', namespace: 'shop', pod, podUid: `uid-${pod}`, volume: 'data', pvc, workload: { kind: 'StatefulSet', name: 'db' }, node: 'node-a', backupSet: set }),
    });
    if (outcome.status !== 'completed') throw new Error(`backup ${outcome.status}`);
    return outcome.snapshotId;
  }

  const slotName = (schedule: string, time: Date) => `${schedule}-${time.toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
  const snapshotIds = async () => (await repo.listSnapshotIds()).sort();
  const backupNames = async (namespace: string) => (await backups.list(namespace)).items.map((b) => b.metadata.name ?? '').sort();

  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(CoreV1Api);
    await installCrds(admin);
    repositories = new ResourceClient(admin, BackupRepositoryKind, 'arca-test');
    backups = new ResourceClient(admin, VolumeBackupKind, 'arca-test');
    pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    schedules = new ResourceClient(admin, VolumeBackupScheduleKind, 'arca-test');
    work = await mkdtemp(path.join(tmpdir(), 'arca-ctl-repo-'));
    repoDir = path.join(work, 'repo');
    await (await initRepository({ url: repoDir, password: PASSWORD, config: SMALL_REPO, kdf: { fixedN: 1024 } })).close();
    repo = await openRepository({ url: repoDir, password: PASSWORD });
    s3 = await startS3Server();
  });

  afterAll(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    for (const config of webhookConfigs) await deleteWebhookConfiguration(admin, config);
    await repo.close();
    await s3.stop();
    await rm(work, { recursive: true, force: true });
  });

  let ns: string;
  let controller: ControllerProcess;
  const startedAt = Date.now();
  const spec = (over: Partial<BackupRepository['spec']> = {}): BackupRepository['spec'] => ({ url: repoDir, passwordSecretRef: { name: 'repo', key: 'password' }, syncPeriod: '1s', ...over });

  test('a BackupRepository is Ready when it opens, NotReady with the reason when it does not, and follows its Secret', async () => {
    ns = await createTestNamespace(admin, 'repo');
    await passwordSecret(ns, 'repo', 'wrong password');
    await repositories.create(ns, { metadata: { name: 'main' }, spec: spec() });
    await repositories.create(ns, { metadata: { name: 'no-secret' }, spec: spec({ passwordSecretRef: { name: 'absent', key: 'password' } }) });
    await repositories.create(ns, { metadata: { name: 'no-repo' }, spec: spec({ url: path.join(work, 'nothing-here') }) });
    controller = await startController(ns);

    expect((await untilPhase(ns, 'main', 'NotReady')).message).toMatch(/password in Secret repo \(key password\) does not open the repository/);
    expect((await untilPhase(ns, 'no-secret', 'NotReady')).message).toMatch(/Secret absent .* does not exist/);
    expect((await untilPhase(ns, 'no-repo', 'NotReady')).message).toMatch(/no Arca repository at/);

    // Fixing the Secret is enough: the controller watches it.
    await setPassword(ns, PASSWORD);
    const ready = await untilPhase(ns, 'main', 'Ready');
    expect(ready.message).toMatch(/opens/);
    expect(ready.lastValidationTime).toBeDefined();
    // And breaking it again is noticed.
    await setPassword(ns, 'nope');
    expect((await untilPhase(ns, 'main', 'NotReady')).message).toMatch(/does not open/);
    await setPassword(ns, PASSWORD);
    await untilPhase(ns, 'main', 'Ready');
  });

  test('retention after a schedule run keeps exactly what the policy keeps, per volume, and removes the objects of forgotten sets', async () => {
    const day1 = new Date(Date.UTC(2026, 0, 5, 10));
    const at = (days: number, hours = 0) => new Date(day1.getTime() + days * DAY + hours * 3_600_000);
    // Sets of schedule "nightly": A (both volumes), B (db-0), C (both), D (db-0), E (db-0).
    const [a, b, c, d, e] = [at(0), at(0, 2), at(1), at(2), at(2, 1)];
    const ids = {
      a0: await snapshotAt(slotName('nightly', a), 'data-db-0', a), a1: await snapshotAt(slotName('nightly', a), 'data-db-1', a),
      b0: await snapshotAt(slotName('nightly', b), 'data-db-0', b),
      c0: await snapshotAt(slotName('nightly', c), 'data-db-0', c), c1: await snapshotAt(slotName('nightly', c), 'data-db-1', c),
      d0: await snapshotAt(slotName('nightly', d), 'data-db-0', d), e0: await snapshotAt(slotName('nightly', e), 'data-db-0', e),
      // Not the schedule's: never touched by its retention.
      manual: await snapshotAt('manual-1', 'data-db-0', at(-5)),
    };
    const sets = [a, b, c, d, e].map((t) => slotName('nightly', t));
    // Sync makes the objects of every set first.
    await until(async () => { const names = await backupNames(ns); return [...sets, 'manual-1'].every((s) => names.includes(s)) ? true : undefined; });

    const empty = await createTestNamespace(admin, 'nothing');
    await schedules.create(ns, { metadata: { name: 'nightly' }, spec: { schedule: '* * * * * *', repository: 'main', includedNamespaces: [empty], retention: { keepDaily: 2 } } });
    // Per volume, the newest of the last two days with snapshots: db-0 keeps E and C, db-1 keeps C and A.
    const kept = [ids.e0, ids.c0, ids.c1, ids.a1, ids.manual].sort();
    await until(async () => (JSON.stringify(await snapshotIds()) === JSON.stringify(kept) ? true : undefined));
    await schedules.mergePatch(ns, 'nightly', { spec: { paused: true } });
    await until(async () => (await schedules.get(ns, 'nightly')).status?.lastRetentionTime);

    // B and D had only forgotten snapshots: gone. A keeps its db-1 volume only.
    await until(async () => { const names = await backupNames(ns); return !names.includes(sets[1] ?? '') && !names.includes(sets[3] ?? '') ? names : undefined; });
    const names = await backupNames(ns);
    expect(names).toEqual(expect.arrayContaining([sets[0], sets[2], sets[4], 'manual-1']));
    const ofA = (await pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=${sets[0] ?? ''}` })).items;
    expect(ofA.map((p) => p.status?.snapshotID)).toEqual([ids.a1]);
    expect(await snapshotIds()).toEqual(kept);

    // What a scraper of the controller sees: retention ran and forgot the three, sync made objects of the eight.
    const metric = await scrapeMetrics(controller.url);
    const runs = metric('arca_retention_runs_total', { schedule: 'nightly', outcome: 'success' }) ?? 0;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(metric('arca_retention_runs_total', { schedule: 'nightly', outcome: 'failure' })).toBeUndefined();
    expect(metric('arca_retention_duration_seconds_count', { schedule: 'nightly', outcome: 'success' })).toBe(runs);
    expect(metric('arca_retention_snapshots_forgotten_total', { schedule: 'nightly', repository: 'main' })).toBe(3);
    expect(metric('arca_retention_last_success_timestamp_seconds', { schedule: 'nightly' })).toBeGreaterThan(startedAt / 1000);
    expect(metric('arca_sync_runs_total', { repository: 'main', outcome: 'success' })).toBeGreaterThan(0);
    expect(metric('arca_sync_last_success_timestamp_seconds', { repository: 'main' })).toBeGreaterThan(startedAt / 1000);
    // Each snapshot once; a sync that listed before retention forgot may make an object again, which the next one removes.
    expect(metric('arca_sync_snapshots_synced_total', { repository: 'main' })).toBeGreaterThanOrEqual(8);
    // The repositories that never opened were never synced.
    expect(metric('arca_sync_runs_total', { repository: 'no-repo' })).toBeUndefined();
  });

  test('deleting a VolumeBackup with deleteSnapshots forgets its snapshots', async () => {
    const before = await snapshotIds();
    const [manual] = (await pvbs.list(ns, { labelSelector: `${BACKUP_SET_LABEL}=manual-1` })).items;
    const id = manual?.status?.snapshotID ?? '';
    expect(before).toContain(id);
    await backups.mergePatch(ns, 'manual-1', { spec: { deleteSnapshots: true } });
    await backups.delete(ns, 'manual-1');
    await until(async () => (await backups.get(ns, 'manual-1').then(() => undefined, (err: unknown) => httpStatusOf(err))) === 404 ? true : undefined);
    expect(await snapshotIds()).toEqual(before.filter((s) => s !== id));
  });

  test('sync: another cluster pointed at the repository read-only lists the backup sets as VolumeBackups with their snapshots', async () => {
    const other = await createTestNamespace(admin, 'other');
    await passwordSecret(other, 'repo', PASSWORD);
    // Read-only: maintained by whoever writes it, never from here.
    await repositories.create(other, { metadata: { name: 'theirs' }, spec: spec({ readOnly: true, maintenance: { schedule: '* * * * * *' } }) });
    const theirController = await startController(other);
    await untilPhase(other, 'theirs', 'Ready');
    const ours = (await backups.list(ns)).items.filter((b) => b.status?.phase === 'Completed' && b.metadata.labels?.['arca.dev/synced'] === 'true').map((b) => b.metadata.name ?? '').sort();
    expect(ours.length).toBeGreaterThan(0);
    const theirs = await until(async () => { const n = await backupNames(other); return ours.every((s) => n.includes(s)) ? n : undefined; });
    expect(theirs).toEqual(ours);
    const synced = await until(async () => { const vb = await backups.get(other, ours[0] ?? ''); return vb.status?.phase === 'Completed' ? vb : undefined; });
    expect(synced.spec.repository).toBe('theirs');
    expect(synced.status?.volumes?.completed).toBeGreaterThan(0);
    const snapshotsThere = (await pvbs.list(other)).items.map((p) => p.status?.snapshotID ?? '').sort();
    expect(snapshotsThere).toEqual(await snapshotIds());
    const [first] = (await pvbs.list(other)).items;
    expect(first?.spec).toMatchObject({ repository: 'theirs', volume: 'data', node: 'node-a', ownerWorkload: { kind: 'StatefulSet', name: 'db' } });
    expect(first?.metadata.labels?.['arca.dev/node']).toBeUndefined();
    // Every snapshot made into an object exactly once, by a sync that succeeded.
    const metric = await scrapeMetrics(theirController.url);
    expect(metric('arca_sync_snapshots_synced_total', { repository: 'theirs' })).toBe(snapshotsThere.length);
    expect(metric('arca_sync_runs_total', { repository: 'theirs', outcome: 'success' })).toBeGreaterThan(0);
    expect(metric('arca_sync_runs_total', { repository: 'theirs', outcome: 'failure' })).toBeUndefined();

    // Nothing here writes to it: no maintenance Job, and deleteSnapshots forgets nothing.
    const jobs = await admin.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: other, labelSelector: 'arca.dev/maintenance=theirs' });
    expect(jobs.items).toEqual([]);
    const before = await snapshotIds();
    await backups.mergePatch(other, ours[0] ?? '', { spec: { deleteSnapshots: true } });
    await backups.delete(other, ours[0] ?? '');
    await until(async () => (await backups.get(other, ours[0] ?? '').then(() => undefined, (err: unknown) => httpStatusOf(err))) === 404 ? true : undefined);
    expect(await snapshotIds()).toEqual(before);

    // Snapshots forgotten elsewhere: their objects go away here too.
    const gone = first?.status?.snapshotID ?? '';
    await forgetSnapshots(repo, [gone]);
    await until(async () => ((await pvbs.list(other)).items.some((p) => p.status?.snapshotID === gone) ? undefined : true));
  });

  test('maintenance of a local-path repository runs inside the controller (no Job could reach the path): prune, then check, the outcome in the status and the metrics', async () => {
    const batch = admin.makeApiClient(BatchV1Api);
    const packs = async () => (await readdir(path.join(repoDir, 'data'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
    // Forgotten data for prune to delete: a snapshot of its own content, then forgotten.
    const lone = await snapshotAt('lone-1', 'data-db-9', new Date());
    await forgetSnapshots(repo, [lone]);
    const before = await packs();
    await repositories.create(ns, { metadata: { name: 'local' }, spec: spec({ maintenance: { schedule: '* * * * * *', checkReadDataSubset: '100%', pruneMaxUnusedPercent: 0 } }) });
    const condition = await until(async () => (await phaseOf(ns, 'local'))?.conditions?.find((c) => c.type === 'Maintained'));
    await repositories.mergePatch(ns, 'local', { spec: { maintenance: { paused: true } } });
    expect(condition).toMatchObject({ status: 'True', reason: 'Succeeded' });
    expect(condition.message).toMatch(/^Run local-[0-9a-f]{6}-maint-\d{14} in the controller: prune deleted [1-9]\d* packs .*; check read (\d+) of \1 packs of \d+ snapshots: no errors\.$/);
    expect(await packs()).toBeLessThan(before);
    expect((await batch.listNamespacedJob({ namespace: ns, labelSelector: 'arca.dev/maintenance=local' })).items).toEqual([]);
    const metric = await scrapeMetrics(controller.url);
    expect(metric('arca_maintenance_runs_total', { repository: 'local', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    expect(metric('arca_maintenance_runs_total', { repository: 'local', outcome: 'failure' })).toBeUndefined();
    expect(metric('arca_maintenance_duration_seconds_count', { repository: 'local', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    expect(metric('arca_maintenance_last_success_timestamp_seconds', { repository: 'local' })).toBeGreaterThan(startedAt / 1000);
    // What it pruned is what a later check sees: the repository is whole.
    expect((await snapshotIds()).length).toBeGreaterThan(0);
  });

  test('maintenance of an object-storage repository: one Job per cron slot running prune then check, never two at once; the outcome in the status and the metrics', async () => {
    const batch = admin.makeApiClient(BatchV1Api);
    const jobsOf = async () => (await batch.listNamespacedJob({ namespace: ns, labelSelector: 'arca.dev/maintenance=maint' })).items;
    const url = `s3://${s3.bucket}/maint`;
    await (await initRepository({ url, password: PASSWORD, config: SMALL_REPO, kdf: { fixedN: 1024 }, backend: { s3: { endpoint: s3.endpoint, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } } })).close();
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's3' }, stringData: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } } });
    await repositories.create(ns, { metadata: { name: 'maint' }, spec: spec({
      url, credentialsSecretRef: { name: 's3' }, s3: { endpoint: s3.endpoint, forcePathStyle: true },
      maintenance: { schedule: '* * * * * *', checkReadDataSubset: '10%', pruneMaxUnusedPercent: 3 },
    }) });
    const [job] = await until(async () => { const jobs = await jobsOf(); return jobs.length > 0 ? jobs : undefined; });
    expect(job?.metadata?.name).toMatch(/^maint-[0-9a-f]{6}-maint-\d{14}$/);
    const pod = job?.spec?.template.spec;
    expect(pod?.initContainers?.map((c) => c.args)).toEqual([['--cache-dir', '/cache', 'prune', '--max-unused', '3%']]);
    expect(pod?.containers.map((c) => c.args)).toEqual([['--cache-dir', '/cache', 'check', '--read-data-subset', '10%']]);
    expect(pod?.containers[0]?.image).toBe('arca:test');
    expect(pod?.containers[0]?.resources?.limits).toEqual({ memory: '1Gi' });
    expect(pod?.containers[0]?.env).toEqual(expect.arrayContaining([
      { name: 'ARCA_REPOSITORY', value: url },
      { name: 'ARCA_PASSWORD', valueFrom: { secretKeyRef: { name: 'repo', key: 'password' } } },
      { name: 'ARCA_S3_ENDPOINT', value: s3.endpoint },
    ]));
    expect(pod?.containers[0]?.envFrom).toEqual([{ secretRef: { name: 's3' } }]);
    // Several slots pass while it runs (nothing runs Jobs here): still that one Job.
    await sleep(3_000);
    expect((await jobsOf()).map((j) => j.metadata?.name)).toEqual([job?.metadata?.name]);

    // It succeeds after 42 s: recorded in the status and the metrics, and the next slot gets its own Job.
    const now = new Date();
    const started = new Date(now.getTime() - 42_000);
    await batch.replaceNamespacedJobStatus({ namespace: ns, name: job?.metadata?.name ?? '', body: { metadata: job?.metadata, spec: job?.spec, status: {
      startTime: started, completionTime: now, succeeded: 1,
      conditions: [{ type: 'SuccessCriteriaMet', status: 'True', lastTransitionTime: now }, { type: 'Complete', status: 'True', lastTransitionTime: now }],
    } } });
    const status = await until(async () => { const s = await phaseOf(ns, 'maint'); return s?.conditions?.some((c) => c.type === 'Maintained' && c.status === 'True') === true ? s : undefined; });
    expect(status.lastMaintenanceTime).toBeDefined();
    const names = await until(async () => { const jobs = await jobsOf(); return jobs.length === 2 ? jobs.map((j) => j.metadata?.name) : undefined; });
    expect(new Set(names).size).toBe(2);
    await repositories.mergePatch(ns, 'maint', { spec: { maintenance: { paused: true } } });
    const metric = await scrapeMetrics(controller.url);
    expect(metric('arca_maintenance_runs_total', { repository: 'maint', outcome: 'success' })).toBe(1);
    expect(metric('arca_maintenance_duration_seconds_sum', { repository: 'maint', outcome: 'success' })).toBe(42);
    expect(metric('arca_maintenance_duration_seconds_bucket', { repository: 'maint', outcome: 'success', le: '15' })).toBe(0);
    expect(metric('arca_maintenance_duration_seconds_bucket', { repository: 'maint', outcome: 'success', le: '60' })).toBe(1);
    expect(metric('arca_maintenance_last_success_timestamp_seconds', { repository: 'maint' })).toBe(Math.floor(now.getTime() / 1000));
  });
});
