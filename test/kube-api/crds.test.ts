import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCrdManifests } from '../../kube/api/crds.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, VolumeBackupScheduleKind, type PodVolumeBackup } from '../../kube/api/kinds.ts';
import { InvalidResourceError, parseResource } from '../../kube/api/validate.ts';

const CRD_DIR = join(import.meta.dirname, '..', '..', 'manifests', 'crds');

describe('generated CRDs', () => {
  it('manifests/crds/ matches the API types (run `npm run gen:crds` after changing kube/api/)', async () => {
    const expected = renderCrdManifests();
    expect((await readdir(CRD_DIR)).sort()).toEqual([...expected.keys()].sort());
    for (const [name, content] of expected) expect(await readFile(join(CRD_DIR, name), 'utf8'), name).toBe(content);
  });
});

const uid = '3f1a1d52-8f66-4a38-9c1e-2a9d4f0e6b11';
function podVolumeBackup(overrides: Partial<PodVolumeBackup['spec']> = {}): PodVolumeBackup {
  return {
    apiVersion: 'arca.dev/v1alpha1',
    kind: 'PodVolumeBackup',
    metadata: { name: 'pvb-1', namespace: 'arca-system' },
    spec: { node: 'node-a', pod: { namespace: 'wp', name: 'mariadb-0', uid }, volume: 'data', repository: 'default', backupSet: 'nightly-1', ...overrides },
  };
}

describe('run-time validation with the same schemas', () => {
  it('accepts a valid object and returns it typed', () => {
    const value: unknown = JSON.parse(JSON.stringify({ ...podVolumeBackup(), status: { phase: 'InProgress', progress: { bytesDone: 5, bytesTotal: 10, percent: 50 }, startTimestamp: '2025-01-02T03:04:05Z' } }));
    const pvb = parseResource(PodVolumeBackupKind, value);
    expect(pvb.status?.progress?.percent).toBe(50);
  });

  it('names the object and the field when a required field is missing', () => {
    const spec: Partial<PodVolumeBackup['spec']> = podVolumeBackup().spec;
    delete spec.repository;
    expect(() => parseResource(PodVolumeBackupKind, { ...podVolumeBackup(), spec }))
      .toThrow(new InvalidResourceError('PodVolumeBackup arca-system/pvb-1 is invalid: spec.repository is required; fix the object or recreate it.'));
  });

  it('refuses an unknown phase, a negative retention and a schedule that is not cron', () => {
    expect(() => parseResource(PodVolumeBackupKind, { ...podVolumeBackup(), status: { phase: 'Done' } })).toThrow(/status\.phase must be one of New, Accepted, InProgress, Completed, PartiallyFailed, Failed, Canceled/);
    const schedule = { apiVersion: 'arca.dev/v1alpha1', kind: 'VolumeBackupSchedule', metadata: { name: 's' }, spec: { schedule: '0 3 * * *', repository: 'default', retention: { keepDaily: 7 } } };
    expect(parseResource(VolumeBackupScheduleKind, schedule).spec.retention?.keepDaily).toBe(7);
    expect(() => parseResource(VolumeBackupScheduleKind, { ...schedule, spec: { ...schedule.spec, retention: { keepDaily: -1 } } })).toThrow(/spec\.retention\.keepDaily must be >= 0/);
    expect(() => parseResource(VolumeBackupScheduleKind, { ...schedule, spec: { ...schedule.spec, schedule: 'every night' } })).toThrow(/spec\.schedule must match pattern/);
  });

  it('refuses a malformed timestamp and a wrong kind', () => {
    expect(() => parseResource(PodVolumeBackupKind, { ...podVolumeBackup(), status: { startTimestamp: 'yesterday' } })).toThrow(/status\.startTimestamp must match format "date-time"/);
    expect(() => parseResource(BackupRepositoryKind, podVolumeBackup())).toThrow(InvalidResourceError);
  });
});
