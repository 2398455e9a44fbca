import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  BackupRepositoryKind, GROUP, KINDS, PodVolumeBackupKind, PodVolumeRestoreKind, VERSION, VolumeBackupKind, VolumeBackupScheduleKind, VolumeRestoreKind,
  type KindDefinition, type PodVolumeBackup, type Resource,
} from '../../kube/api/kinds.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { updateStatus } from '../../kube/status.ts';
import { installCrds, rejection } from '../support/arca-kube.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubectl } from '../support/control-plane.ts';

const UID = '3f1a1d52-8f66-4a38-9c1e-2a9d4f0e6b11';
const SNAPSHOT = 'ab'.repeat(32);

type Spec<K extends KindDefinition> = Resource<K>['spec'];
const valid = {
  BackupRepository: { url: 's3://bucket/prefix', passwordSecretRef: { name: 'repo-password', key: 'password' }, readOnly: false, maintenance: { schedule: '0 3 * * 0', checkReadDataSubset: '5%' } } satisfies Spec<typeof BackupRepositoryKind>,
  VolumeBackupSchedule: { schedule: '*/15 * * * *', timeZone: 'Europe/Paris', repository: 'default', retention: { keepLast: 3, keepDaily: 7 }, labelSelector: { matchLabels: { app: 'db' } } } satisfies Spec<typeof VolumeBackupScheduleKind>,
  VolumeBackup: { repository: 'default', includedNamespaces: ['wp'], defaultVolumesToBackup: true } satisfies Spec<typeof VolumeBackupKind>,
  PodVolumeBackup: { node: 'node-a', pod: { namespace: 'wp', name: 'db-0', uid: UID }, volume: 'data', pvcName: 'data-db-0', ownerWorkload: { kind: 'StatefulSet', name: 'db' }, repository: 'default', backupSet: 'nightly-1' } satisfies Spec<typeof PodVolumeBackupKind>,
  VolumeRestore: { volumeBackup: 'nightly-1', namespaceMapping: { wp: 'wp-restored' } } satisfies Spec<typeof VolumeRestoreKind>,
  PodVolumeRestore: { node: 'node-a', pod: { namespace: 'wp', name: 'db-0', uid: UID }, volume: 'data', repository: 'default', snapshotID: SNAPSHOT, restoreUID: 'r-1' } satisfies Spec<typeof PodVolumeRestoreKind>,
};

describe.skipIf(!kubeAvailable)('the generated CRDs on a real API server', () => {
  let admin: KubeConfig;
  let namespace: string;
  let api: CustomObjectsApi;
  const create = (plural: string, name: string, spec: object) => api.createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace, plural, body: { apiVersion: `${GROUP}/${VERSION}`, kind: KINDS.find((k) => k.plural === plural)?.kind, metadata: { name }, spec },
  });

  beforeAll(async () => {
    admin = adminKubeConfig();
    await installCrds(admin);
    namespace = await createTestNamespace(admin, 'crds');
    api = admin.makeApiClient(CustomObjectsApi);
  });

  test('every CRD is established with a status subresource and accepts a valid object', async () => {
    const crds = admin.makeApiClient(ApiextensionsV1Api);
    for (const kind of KINDS) {
      const crd = await crds.readCustomResourceDefinition({ name: `${kind.plural}.${GROUP}` });
      expect(crd.status?.conditions?.find((c) => c.type === 'Established')?.status, kind.kind).toBe('True');
      expect(crd.spec.versions[0]?.subresources?.status, kind.kind).toEqual({});
      const spec = valid[kind.kind];
      const client = new ResourceClient(admin, kind, 'arca-test');
      const created = await create(kind.plural, `valid-${kind.singular}`, spec) as unknown;
      expect(client.parse(created).spec, kind.kind).toEqual(spec);
    }
  });

  test('refuses invalid objects with a message naming the field', async () => {
    const noRepository: Partial<typeof valid.PodVolumeBackup> = { ...valid.PodVolumeBackup };
    delete noRepository.repository;
    expect(await rejection(create('podvolumebackups', 'no-repository', noRepository))).toMatchObject({ code: 422, message: expect.stringContaining('spec.repository: Required value') as unknown });
    expect(await rejection(create('volumebackupschedules', 'negative-retention', { ...valid.VolumeBackupSchedule, retention: { keepDaily: -1 } })))
      .toMatchObject({ code: 422, message: expect.stringContaining('spec.retention.keepDaily: Invalid value: -1: spec.retention.keepDaily in body should be greater than or equal to 0') as unknown });
    for (const schedule of ['every night', '0 25 * * *', '* * * *']) {
      expect(await rejection(create('volumebackupschedules', 'not-cron', { ...valid.VolumeBackupSchedule, schedule })))
        .toMatchObject({ code: 422, message: expect.stringContaining(`spec.schedule: Invalid value: "${schedule}": spec.schedule in body should match`) as unknown });
    }
    // The maintenance settings a controller acts on (Jobs, or prune and check inside it for a local path).
    const maintenance = valid.BackupRepository.maintenance;
    for (const [name, change, field] of [
      ['prune-over-100', { pruneMaxUnusedPercent: 101 }, 'spec.maintenance.pruneMaxUnusedPercent: Invalid value: 101'],
      ['subset-words', { checkReadDataSubset: 'half' }, 'spec.maintenance.checkReadDataSubset: Invalid value: "half"'],
      ['subset-zero', { checkReadDataSubset: '0%' }, 'spec.maintenance.checkReadDataSubset: Invalid value: "0%"'],
      ['subset-over-all', { checkReadDataSubset: '150%' }, 'spec.maintenance.checkReadDataSubset: Invalid value: "150%"'],
      ['maintenance-not-cron', { schedule: 'nightly' }, 'spec.maintenance.schedule: Invalid value: "nightly"'],
    ] as const) {
      expect(await rejection(create('backuprepositories', name, { ...valid.BackupRepository, maintenance: { ...maintenance, ...change } })))
        .toMatchObject({ code: 422, message: expect.stringContaining(field) as unknown });
    }
    expect(await rejection(create('podvolumerestores', 'bad-snapshot', { ...valid.PodVolumeRestore, snapshotID: 'latest' })))
      .toMatchObject({ code: 422, message: expect.stringContaining('spec.snapshotID') as unknown });

    const pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    const pvb = await pvbs.create(namespace, { metadata: { name: 'unknown-phase' }, spec: valid.PodVolumeBackup });
    const statusWrite = api.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace, plural: 'podvolumebackups', name: 'unknown-phase', body: { ...pvb, status: { phase: 'Done' } },
    });
    expect(await rejection(statusWrite)).toMatchObject({
      code: 422, message: expect.stringContaining('status.phase: Unsupported value: "Done": supported values: "New", "Accepted", "InProgress", "Completed", "PartiallyFailed", "Failed", "Canceled"') as unknown,
    });
  });

  test('kubectl get podvolumebackups shows phase, node, pod, volume, progress and age', async () => {
    const pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    const pvb = await pvbs.create(namespace, { metadata: { name: 'columns' }, spec: { ...valid.PodVolumeBackup, node: 'node-b', volume: 'uploads' } });
    await updateStatus(pvbs, pvb, (status) => ({ ...status, phase: 'InProgress' as const, progress: { bytesDone: 300, bytesTotal: 1000, percent: 30 } }));
    const { stdout } = await kubectl(['get', 'podvolumebackups', '-n', namespace, 'columns']);
    const [header, row] = stdout.trim().split('\n').map((line) => line.trim().split(/\s{2,}/));
    expect(header).toEqual(['NAME', 'PHASE', 'NODE', 'POD', 'VOLUME', 'PROGRESS', 'AGE']);
    expect(row?.slice(0, 6)).toEqual(['columns', 'InProgress', 'node-b', 'db-0', 'uploads', '30']);
    const wide = (await kubectl(['get', 'pvb', '-n', namespace, 'columns', '-o', 'wide'])).stdout;
    expect(wide).toMatch(/BYTES DONE\s+BYTES TOTAL\s+MESSAGE/);
  });

  test('a status update from a stale copy is retried on the fresh object, not lost', async () => {
    const pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    const stale: PodVolumeBackup = await pvbs.create(namespace, { metadata: { name: 'conflict' }, spec: valid.PodVolumeBackup });
    // Another writer (say the controller) writes after our copy was read.
    const other = await updateStatus(pvbs, stale, (status) => ({ ...status, phase: 'Accepted' as const, message: 'accepted by node-a' }));
    expect(other.metadata.resourceVersion).not.toBe(stale.metadata.resourceVersion);

    const conflicts: string[] = [];
    const written = await updateStatus(pvbs, stale, (status) => ({ ...status, progress: { bytesDone: 1, bytesTotal: 2 } }), {
      onConflict: (_attempt, reason) => { conflicts.push(reason); },
    });
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toContain('the object has been modified');
    const read = await pvbs.get(namespace, 'conflict');
    expect(read.status).toEqual({ phase: 'Accepted', message: 'accepted by node-a', progress: { bytesDone: 1, bytesTotal: 2 } });
    expect(read.metadata.resourceVersion).toBe(written.metadata.resourceVersion);
  });
});
