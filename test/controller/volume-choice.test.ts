import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, test } from 'vitest';
import type { PodVolumeBackup } from '../../kube/api/kinds.ts';
import { volumesToBackUp } from '../../controller/backup/volume-selection.ts';
import { matchVolumes } from '../../controller/restore/volume-matching.ts';
import { cronSlots, ScheduleError, slotBackupName } from '../../controller/schedule/slots.ts';

const backedUp = (name: string, pod: string, volume: string, extra: Partial<PodVolumeBackup['spec']> = {}): PodVolumeBackup => ({
  apiVersion: 'arca.dev/v1alpha1', kind: 'PodVolumeBackup', metadata: { name },
  spec: { node: 'n', pod: { namespace: 'app', name: pod, uid: `${pod}-uid` }, volume, repository: 'repo', backupSet: 'set', ...extra },
});

describe('which volumes a backup takes', () => {
  const pod = (annotations: Record<string, string>): V1Pod => ({
    metadata: { annotations },
    spec: { containers: [], volumes: [{ name: 'data', emptyDir: {} }, { name: 'logs', emptyDir: {} }, { name: 'conf', configMap: { name: 'c' } }, { name: 'host', hostPath: { path: '/' } }] },
  });

  test('opt-in names, from Arca\'s, Velero\'s or Ark\'s annotation; never configMap or hostPath', () => {
    expect(volumesToBackUp(pod({ 'backup.arca.dev/backup-volumes': 'data, conf,host' }), false)).toEqual(['data']);
    expect(volumesToBackUp(pod({ 'backup.velero.io/backup-volumes': 'logs' }), false)).toEqual(['logs']);
    expect(volumesToBackUp(pod({ 'backup.ark.heptio.com/backup-volumes': 'data,logs' }), false)).toEqual(['data', 'logs']);
    expect(volumesToBackUp(pod({}), false)).toEqual([]);
  });

  test('defaultVolumesToBackup: every eligible volume but the excluded ones', () => {
    expect(volumesToBackUp(pod({}), true)).toEqual(['data', 'logs']);
    expect(volumesToBackUp(pod({ 'backup.velero.io/backup-volumes-excludes': 'logs' }), true)).toEqual(['data']);
  });
});

describe('which backed-up volume a new pod\'s volume gets', () => {
  test('by PVC name, else by StatefulSet and ordinal, else by pod name', () => {
    const backups = [
      backedUp('b-pvc', 'db-0', 'data', { pvcName: 'data-db-0' }),
      backedUp('b-sts1', 'db-1', 'cache', { ownerWorkload: { kind: 'StatefulSet', name: 'db' } }),
      backedUp('b-sts0', 'db-0', 'cache', { ownerWorkload: { kind: 'StatefulSet', name: 'db' } }),
      backedUp('b-pod', 'lonely', 'scratch'),
    ];
    const db0: V1Pod = {
      metadata: { name: 'db-0', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'u', controller: true }] },
      spec: { containers: [], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }, { name: 'cache', emptyDir: {} }, { name: 'token', projected: { sources: [] } }] },
    };
    expect(matchVolumes(db0, backups).map((m) => [m.volume, m.source.metadata.name])).toEqual([['data', 'b-pvc'], ['cache', 'b-sts0']]);
    const lonely: V1Pod = { metadata: { name: 'lonely' }, spec: { containers: [], volumes: [{ name: 'scratch', emptyDir: {} }, { name: 'other', emptyDir: {} }] } };
    expect(matchVolumes(lonely, backups).map((m) => [m.volume, m.source.metadata.name])).toEqual([['scratch', 'b-pod']]);
  });

  test('a Deployment\'s new pod (no name yet, another ReplicaSet) by workload and volume', () => {
    const backups = [backedUp('b-web', 'web-5d9f-abcde', 'cache', { ownerWorkload: { kind: 'Deployment', name: 'web' } })];
    const web: V1Pod = {
      metadata: { generateName: 'web-77aa-', labels: { 'pod-template-hash': '77aa' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-77aa', uid: 'u', controller: true }] },
      spec: { containers: [], volumes: [{ name: 'cache', emptyDir: {} }] },
    };
    expect(matchVolumes(web, backups).map((m) => m.source.metadata.name)).toEqual(['b-web']);
  });
});

describe('schedule slots', () => {
  test('the newest slot in the schedule\'s time zone and its backup name in UTC', () => {
    const slots = cronSlots('30 2 * * *', 'Europe/Paris');
    const latest = slots.latest(new Date('2025-07-01T12:00:00Z'));
    expect(latest?.toISOString()).toBe('2025-07-01T00:30:00.000Z');
    expect(slotBackupName('nightly', latest ?? new Date())).toBe('nightly-20250701003000');
    expect(slots.latest(new Date('2025-07-01T00:30:00Z'))?.toISOString()).toBe('2025-07-01T00:30:00.000Z');
    expect(slots.next(new Date('2025-07-01T00:30:00Z'))?.toISOString()).toBe('2025-07-02T00:30:00.000Z');
  });

  test('an unknown time zone is a ScheduleError naming the fields to fix', () => {
    expect(() => cronSlots('* * * * *', 'Mars/Olympus')).toThrow(ScheduleError);
    expect(() => cronSlots('* * * * *', 'Mars/Olympus')).toThrow(/fix spec.schedule or spec.timeZone/);
  });
});
