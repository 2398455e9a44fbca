import { describe, expect, it } from 'vitest';
import { metadataFromLabels, snapshotLabels, volumeIdentityLabels, type VolumeSnapshotMetadata } from '../../repository-access/snapshot-labels.ts';

const base: VolumeSnapshotMetadata = {
  cluster: 'prod-eu', namespace: 'shop', pod: 'web-0', podUid: 'uid-1', volume: 'data', node: 'node-a', backupSet: 'daily-2031',
};

describe('snapshot metadata', () => {
  it('records every field as a label and reads it back', () => {
    const full = { ...base, pvc: 'data-web-0', workload: { kind: 'StatefulSet', name: 'web' } };
    const labels = snapshotLabels(full);
    expect(labels).toEqual({
      'arca.dev/cluster': 'prod-eu', 'arca.dev/namespace': 'shop', 'arca.dev/pod': 'web-0', 'arca.dev/pod-uid': 'uid-1',
      'arca.dev/volume': 'data', 'arca.dev/pvc': 'data-web-0', 'arca.dev/workload-kind': 'StatefulSet', 'arca.dev/workload': 'web',
      'arca.dev/node': 'node-a', 'arca.dev/backup-set': 'daily-2031',
    });
    expect(metadataFromLabels(labels)).toEqual(full);
    expect(metadataFromLabels(snapshotLabels(base))).toEqual({ ...base, pvc: undefined, workload: undefined });
    const ofJob = { ...base, podVolumeBackupUid: 'pvb-uid' };
    expect(snapshotLabels(ofJob)).toMatchObject({ 'arca.dev/pod-volume-backup-uid': 'pvb-uid' });
    expect(metadataFromLabels(snapshotLabels(ofJob))).toEqual(ofJob);
  });

  it('reads nothing from labels that are not a pod volume\'s', () => {
    expect(metadataFromLabels(undefined)).toBeUndefined();
    expect(metadataFromLabels({ 'arca.dev/namespace': 'shop' })).toBeUndefined();
  });
});

describe('which snapshots are of the same volume (the parent)', () => {
  it('a claim-backed volume is its PVC, whatever pod, node or workload', () => {
    const identity = volumeIdentityLabels({ ...base, pvc: 'data-web-0', workload: { kind: 'StatefulSet', name: 'web' } });
    expect(identity).toEqual({ 'arca.dev/cluster': 'prod-eu', 'arca.dev/namespace': 'shop', 'arca.dev/pvc': 'data-web-0' });
  });

  it('an emptyDir of a Deployment is the workload and volume name, not the pod (its name changes)', () => {
    const identity = volumeIdentityLabels({ ...base, pod: 'api-7f9c-x2x', workload: { kind: 'Deployment', name: 'api' } });
    expect(identity).toEqual({
      'arca.dev/cluster': 'prod-eu', 'arca.dev/namespace': 'shop', 'arca.dev/workload-kind': 'Deployment', 'arca.dev/workload': 'api', 'arca.dev/volume': 'data',
    });
  });

  it('a StatefulSet\'s emptyDir keeps the pod name, whose ordinal tells replicas apart', () => {
    expect(volumeIdentityLabels({ ...base, workload: { kind: 'StatefulSet', name: 'web' } })).toMatchObject({ 'arca.dev/pod': 'web-0', 'arca.dev/volume': 'data' });
  });

  it('a bare pod is its name and volume; never the UID or node, which change on a move', () => {
    const identity = volumeIdentityLabels(base);
    expect(identity).toEqual({ 'arca.dev/cluster': 'prod-eu', 'arca.dev/namespace': 'shop', 'arca.dev/pod': 'web-0', 'arca.dev/volume': 'data' });
    expect(Object.keys(identity)).not.toContain('arca.dev/pod-uid');
    expect(Object.keys(identity)).not.toContain('arca.dev/node');
  });
});
