import { describe, expect, test } from 'vitest';
import type { StoredSnapshot } from '../../engine/index.ts';
import { maintenanceJobName } from '../../controller/repository/maintenance-job.ts';
import { RetentionError, retentionPolicyOf, volumeGroups } from '../../controller/schedule/retention.ts';
import { snapshotLabels, type VolumeSnapshotMetadata } from '../../repository-access/snapshot-labels.ts';

const base: VolumeSnapshotMetadata = { cluster: 'c', namespace: 'shop', pod: 'db-0', podUid: 'u1', volume: 'data', node: 'n1', backupSet: 'nightly-20260101000000' };

function snapshot(id: string, meta: Partial<VolumeSnapshotMetadata>): StoredSnapshot {
  return {
    id,
    snapshot: { version: 1, time: '2026-01-01T00:00:00Z', tree: '0'.repeat(64), paths: ['/v'], hostname: 'n1', username: 'arca', tags: [], program_version: 'test', labels: snapshotLabels({ ...base, ...meta }) },
  };
}

describe('schedule retention', () => {
  test('the policy maps the schedule\'s keep fields; keepWithin becomes whole hours; a policy keeping nothing is refused', () => {
    expect(retentionPolicyOf({ keepLast: 2, keepDaily: 7, keepWithin: '90m' })).toMatchObject({ last: 2, daily: 7, within: { years: 0, months: 0, days: 0, hours: 2 } });
    expect(() => retentionPolicyOf({})).toThrow(RetentionError);
    expect(() => retentionPolicyOf({ keepLast: 0 })).toThrow(/keeps nothing/);
  });

  test('snapshots are grouped per volume, only those of the schedule\'s own slots', () => {
    const groups = volumeGroups([
      snapshot('a', { pvc: 'data-db-0' }),
      snapshot('b', { pvc: 'data-db-0', pod: 'db-0-moved', podUid: 'u2', node: 'n2', backupSet: 'nightly-20260102000000' }),
      snapshot('c', { pvc: 'data-db-1' }),
      snapshot('d', { workload: { kind: 'Deployment', name: 'web' }, pod: 'web-abc' }),
      snapshot('e', { workload: { kind: 'Deployment', name: 'web' }, pod: 'web-xyz', podUid: 'u3' }),
      snapshot('f', { pvc: 'data-db-0', backupSet: 'nightly-extra-20260102000000' }), // another schedule's
      snapshot('g', { pvc: 'data-db-0', backupSet: 'manual' }),
    ], 'nightly');
    expect(groups.map((g) => g.map((s) => s.id)).sort()).toEqual([['a', 'b'], ['c'], ['d', 'e']]);
  });

  test('maintenance Job names are per repository and slot, and fit a label value', () => {
    const slot = new Date('2026-03-04T05:06:07Z');
    const long = 'a'.repeat(253);
    expect(maintenanceJobName('offsite', slot)).toMatch(/^offsite-[0-9a-f]{6}-maint-20260304050607$/);
    expect(maintenanceJobName(long, slot).length).toBeLessThanOrEqual(63);
    expect(maintenanceJobName(`${'a'.repeat(24)}x`, slot)).not.toBe(maintenanceJobName(`${'a'.repeat(24)}y`, slot));
  });
});
