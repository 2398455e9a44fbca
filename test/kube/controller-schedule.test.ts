import type { ChildProcess } from 'node:child_process';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BackupRepositoryKind, PodVolumeBackupKind, VolumeBackupKind, VolumeBackupScheduleKind } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { httpStatusOf } from '../../kube/errors.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild } from '../support/child-process.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until, type ControllerProcess,
} from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';

// Schedules and failover: controllers as processes, restarted and killed by the test.

describe.skipIf(!kubeAvailable)('arca controller: schedules and leader election', () => {
  let admin: KubeConfig;
  let core: CoreV1Api;
  let controllerNs: string;
  let appNs: string;
  let webhookConfig: string;
  const running = new Set<ChildProcess>();
  let schedules: ResourceClient<typeof VolumeBackupScheduleKind>;
  let backups: ResourceClient<typeof VolumeBackupKind>;
  let pvbs: ResourceClient<typeof PodVolumeBackupKind>;

  async function startController(podName: string): Promise<ControllerProcess> {
    const port = await freePort();
    const controller = await startControllerProcess(controllerArgs(kubeTestEnv().kubeconfig, controllerNs, webhookConfig, port), { POD_NAME: podName });
    running.add(controller.child);
    return controller;
  }

  async function stop(controller: ControllerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const exited = new Promise<void>((resolve) => { controller.child.once('exit', () => { resolve(); }); });
    if (signal === 'SIGTERM') await stopChild(controller.child);
    else controller.child.kill(signal);
    await exited;
    running.delete(controller.child);
  }

  const backupsOf = async (schedule: string) => (await backups.list(controllerNs, { labelSelector: `arca.dev/schedule=${schedule}` })).items.map((b) => b.metadata.name ?? '').sort();
  const leaseHolder = async () => (await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: controllerNs, name: 'arca-controller' }).catch(() => undefined))?.spec?.holderIdentity;

  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(CoreV1Api);
    await installCrds(admin);
    controllerNs = await createTestNamespace(admin, 'sched');
    appNs = await createTestNamespace(admin, 'sched-app');
    schedules = new ResourceClient(admin, VolumeBackupScheduleKind, 'arca-test');
    backups = new ResourceClient(admin, VolumeBackupKind, 'arca-test');
    pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    await new ResourceClient(admin, BackupRepositoryKind, 'arca-test').create(controllerNs, { metadata: { name: 'repo' }, spec: { url: '/backups', passwordSecretRef: { name: 'repo', key: 'password' } } });
    webhookConfig = await createWebhookConfiguration(admin, await freePort());
  });

  afterAll(async () => {
    await Promise.all([...running].map((c) => stopChild(c)));
    await deleteWebhookConfiguration(admin, webhookConfig);
  });

  test('a fast cron makes one VolumeBackup per slot, named after the slot; a paused schedule makes none', async () => {
    const controller = await startController('ctl-fast');
    const spec = { schedule: '*/2 * * * * *', repository: 'repo', includedNamespaces: [appNs] };
    await schedules.create(controllerNs, { metadata: { name: 'paused' }, spec: { ...spec, paused: true } });
    await schedules.create(controllerNs, { metadata: { name: 'fast' }, spec });
    const names = await until(async () => { const n = await backupsOf('fast'); return n.length >= 2 ? n : undefined; });
    for (const name of names) {
      expect(name).toMatch(/^fast-\d{14}$/);
      expect(Number(name.slice(-1)) % 2).toBe(0); // every second second
    }
    const paused = await schedules.get(controllerNs, 'paused');
    expect(paused.status?.message).toBe('Paused.');
    expect(await backupsOf('paused')).toEqual([]);
    // The backups made run like any other (no pods selected: done at once).
    await until(async () => ((await backups.get(controllerNs, names[0] ?? '')).status?.phase === 'Completed' ? true : undefined));
    await schedules.mergePatch(controllerNs, 'fast', { spec: { paused: true } });
    await stop(controller);
  });

  test('a restarted controller does not run a slot again, even when that slot\'s backup is gone', async () => {
    let controller = await startController('ctl-once');
    // A daily slot a few seconds ahead, written in India's time zone (UTC+05:30).
    const slot = new Date(Math.ceil((Date.now() + 4_000) / 1000) * 1000);
    const local = new Date(slot.getTime() + 5.5 * 3_600_000);
    const cron = `${local.getUTCSeconds()} ${local.getUTCMinutes()} ${local.getUTCHours()} * * *`;
    await schedules.create(controllerNs, { metadata: { name: 'daily' }, spec: { schedule: cron, timeZone: 'Asia/Kolkata', repository: 'repo', includedNamespaces: [appNs] } });
    const expected = `daily-${slot.toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
    expect(await until(async () => { const n = await backupsOf('daily'); return n.length > 0 ? n : undefined; })).toEqual([expected]);
    await until(async () => ((await backups.get(controllerNs, expected)).status?.phase === 'Completed' ? true : undefined));

    // Down, the slot's backup removed (as retention would), up again: the slot is still the newest.
    await stop(controller);
    await backups.mergePatch(controllerNs, expected, { metadata: { finalizers: null } });
    await backups.delete(controllerNs, expected);
    controller = await startController('ctl-once-again');
    // Proof the new controller reconciles schedules: another schedule's first backup.
    await schedules.create(controllerNs, { metadata: { name: 'probe' }, spec: { schedule: '* * * * * *', repository: 'repo', includedNamespaces: [appNs] } });
    await until(async () => ((await backupsOf('probe')).length > 0 ? true : undefined));
    const daily = await schedules.get(controllerNs, 'daily');
    expect(daily.status?.lastBackup).toBe(expected);
    expect(await backupsOf('daily')).toEqual([]);
    expect(await backups.get(controllerNs, expected).then(() => 200, (err: unknown) => httpStatusOf(err))).toBe(404);
    await schedules.mergePatch(controllerNs, 'probe', { spec: { paused: true } });
    await stop(controller);
  });

  test('two controllers: the leader is killed, the other takes the Lease and finishes the backup', async () => {
    const a = await startController('ctl-a');
    await until(async () => ((await leaseHolder())?.startsWith('ctl-a_') === true ? true : undefined));
    const b = await startController('ctl-b');
    const created = await core.createNamespacedPod({
      namespace: appNs,
      body: { metadata: { name: 'db-0', annotations: { 'backup.arca.dev/backup-volumes': 'data' } }, spec: { nodeName: 'node-a', containers: [{ name: 'db', image: 'db:1' }], volumes: [{ name: 'data', emptyDir: {} }] } },
    });
    await core.replaceNamespacedPodStatus({ namespace: appNs, name: 'db-0', body: { metadata: created.metadata, spec: created.spec, status: { phase: 'Running' } } });

    await stop(a, 'SIGKILL');
    await backups.create(controllerNs, { metadata: { name: 'after-failover' }, spec: { repository: 'repo', includedNamespaces: [appNs] } });
    const [pvb] = await until(async () => { const l = (await pvbs.list(controllerNs, { labelSelector: `${BACKUP_SET_LABEL}=after-failover` })).items; return l.length > 0 ? l : undefined; });
    expect((await leaseHolder())?.startsWith('ctl-b_')).toBe(true);
    if (pvb === undefined) throw new Error('unreachable');
    await pvbs.replaceStatus({ ...pvb, status: { phase: 'Completed', snapshotID: 'a'.repeat(64) } });
    const done = await until(async () => { const vb = await backups.get(controllerNs, 'after-failover'); return vb.status?.phase === 'Completed' ? vb : undefined; });
    expect(done.status?.volumes).toMatchObject({ total: 1, completed: 1 });
    await stop(b);
  });
});
