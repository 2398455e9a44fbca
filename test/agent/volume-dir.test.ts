import { mkdir, realpath, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { V1Volume } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeJobError, type VolumeJobErrorCode } from '../../agent/errors.ts';
import { claimNameOf, findVolumeDir, volumeLocation } from '../../agent/volume-dir.ts';
import { boundPv, makePodsDir, mountVolume, pod } from './kubelet-layout.ts';

const UID = '5f0c8a8e-1111-4c3a-9d7e-000000000001';

let root: string;
let podsDir: string;
beforeEach(async () => { ({ root, podsDir } = await makePodsDir()); });
afterEach(async () => { await rm(root, { recursive: true, force: true }); });

async function failure(promise: Promise<unknown>): Promise<VolumeJobError> {
  const err: unknown = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof VolumeJobError)) throw new Error(`expected a VolumeJobError, got ${String(err)}`);
  return err;
}

function thrown(fn: () => unknown): VolumeJobError {
  try {
    fn();
  } catch (err) {
    if (err instanceof VolumeJobError) return err;
    throw err;
  }
  throw new Error('expected a VolumeJobError, nothing was thrown');
}

function expectCode(err: VolumeJobError, code: VolumeJobErrorCode, ...words: string[]): void {
  expect(err.code).toBe(code);
  for (const word of words) expect(err.message).toContain(word);
}

describe('volume directories as the kubelet lays them out', () => {
  it('finds an emptyDir by its volume name', async () => {
    const dir = await mountVolume(podsDir, UID, 'kubernetes.io~empty-dir', 'cache');
    const p = pod(UID, [{ name: 'cache', emptyDir: {} }]);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'cache'))).toBe(dir);
  });

  it('finds a CSI-backed claim by its PV name, one level down at /mount', async () => {
    const dir = await mountVolume(podsDir, UID, 'kubernetes.io~csi', 'pvc-0a1b', true);
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-0' } }]);
    const pv = boundPv('pvc-0a1b', 'data-web-0', { csi: { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-1' } });
    const location = volumeLocation(p, 'data', pv);
    expect(location).toMatchObject({ kind: 'csi', dirName: 'pvc-0a1b', claim: 'data-web-0' });
    expect(await findVolumeDir(podsDir, UID, location)).toBe(dir);
  });

  it('finds NFS and local PVs under their in-tree plugin folders', async () => {
    const nfs = await mountVolume(podsDir, UID, 'kubernetes.io~nfs', 'pv-nfs');
    const local = await mountVolume(podsDir, UID, 'kubernetes.io~local-volume', 'pv-local');
    const p = pod(UID, [{ name: 'a', persistentVolumeClaim: { claimName: 'ca' } }, { name: 'b', persistentVolumeClaim: { claimName: 'cb' } }]);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'a', boundPv('pv-nfs', 'ca', { nfs: { server: 'nas', path: '/export' } })))).toBe(nfs);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'b', boundPv('pv-local', 'cb', { local: { path: '/mnt/disk1' } })))).toBe(local);
  });

  it('tells an emptyDir and a PV of the same name apart', async () => {
    const empty = await mountVolume(podsDir, UID, 'kubernetes.io~empty-dir', 'data');
    const nfs = await mountVolume(podsDir, UID, 'kubernetes.io~nfs', 'data');
    const p = pod(UID, [{ name: 'data', emptyDir: {} }, { name: 'shared', persistentVolumeClaim: { claimName: 'c' } }]);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'data'))).toBe(empty);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'shared', boundPv('data', 'c', { nfs: { server: 'nas', path: '/' } })))).toBe(nfs);
  });

  it('finds inline CSI volumes by volume name, FlexVolumes by their driver folder', async () => {
    const csi = await mountVolume(podsDir, UID, 'kubernetes.io~csi', 'scratch', true);
    const flex = await mountVolume(podsDir, UID, 'acme~nfs', 'legacy');
    const p = pod(UID, [{ name: 'scratch', csi: { driver: 'inline.csi.example' } }, { name: 'legacy', flexVolume: { driver: 'acme/nfs' } }]);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'scratch'))).toBe(csi);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'legacy'))).toBe(flex);
  });

  it('finds an in-tree PV whether or not CSI migration moved it under kubernetes.io~csi', async () => {
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }]);
    const pv = boundPv('pv-ebs', 'c', { awsElasticBlockStore: { volumeID: 'vol-1' } });
    const migrated = await mountVolume(podsDir, UID, 'kubernetes.io~csi', 'pv-ebs', true);
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'data', pv))).toBe(migrated);
    const inTree = await mountVolume(podsDir, UID, 'kubernetes.io~aws-ebs', 'pv-ebs');
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'data', pv))).toBe(inTree);
  });

  it('names the claim of a generic ephemeral volume after the pod and volume', async () => {
    const dir = await mountVolume(podsDir, UID, 'kubernetes.io~csi', 'pvc-eph', true);
    const p = pod(UID, [{ name: 'scratch', ephemeral: { volumeClaimTemplate: { spec: {} } } }], 'worker-x7k2');
    expect(claimNameOf(p, 'scratch')).toBe('worker-x7k2-scratch');
    const pv = boundPv('pvc-eph', 'worker-x7k2-scratch', { csi: { driver: 'd', volumeHandle: 'h' } });
    expect(await findVolumeDir(podsDir, UID, volumeLocation(p, 'scratch', pv))).toBe(dir);
  });

  it('resolves through a pods directory that is itself a symlink (a moved kubelet root)', async () => {
    const dir = await mountVolume(podsDir, UID, 'kubernetes.io~empty-dir', 'cache');
    const link = path.join(root, 'host_pods');
    await symlink(podsDir, link);
    const found = await findVolumeDir(link, UID, volumeLocation(pod(UID, [{ name: 'cache', emptyDir: {} }]), 'cache'));
    expect(found).toBe(await realpath(dir));
  });
});

describe('volumes that are refused, and why', () => {
  it.each<[string, Omit<V1Volume, 'name'>, string]>([
    ['secret', { secret: { secretName: 's' } }, 'Secret'],
    ['configMap', { configMap: { name: 'c' } }, 'ConfigMap'],
    ['projected', { projected: { sources: [] } }, 'projected'],
    ['downwardAPI', { downwardAPI: { items: [] } }, 'fields'],
    ['hostPath', { hostPath: { path: '/var/log' } }, 'host'],
  ])('a %s volume is never backed up', (kind, source, why) => {
    const err = thrown(() => volumeLocation(pod(UID, [{ name: 'v', ...source }]), 'v'));
    expectCode(err, 'ARCA_AGENT_VOLUME_KIND_REFUSED', `"v"`, kind, 'never backed up', why);
  });

  it('a claim bound to a hostPath PV is refused like a hostPath volume', () => {
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }]);
    const err = thrown(() => volumeLocation(p, 'data', boundPv('pv-host', 'c', { hostPath: { path: '/srv' } })));
    expectCode(err, 'ARCA_AGENT_VOLUME_KIND_REFUSED', 'pv-host', 'hostPath', 'never backed up');
  });

  it('a raw block PV has no file system to back up', () => {
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }]);
    const err = thrown(() => volumeLocation(p, 'data', boundPv('pv-raw', 'c', { volumeMode: 'Block', csi: { driver: 'd', volumeHandle: 'h' } })));
    expectCode(err, 'ARCA_AGENT_VOLUME_KIND_REFUSED', 'pv-raw', 'block');
  });

  it('a volume the pod does not have', () => {
    expectCode(thrown(() => volumeLocation(pod(UID, [{ name: 'a', emptyDir: {} }]), 'b')), 'ARCA_AGENT_NO_SUCH_VOLUME', 'shop/web-0', '"b"');
  });

  it('a claim not bound yet, or a PV bound to another claim', () => {
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }]);
    expectCode(thrown(() => volumeLocation(p, 'data')), 'ARCA_AGENT_CLAIM_UNBOUND', '"c"', 'not bound');
    const other = boundPv('pv-1', 'someone-else', { nfs: { server: 'nas', path: '/' } });
    expectCode(thrown(() => volumeLocation(p, 'data', other)), 'ARCA_AGENT_CLAIM_UNBOUND', 'pv-1', 'shop/someone-else');
  });
});

describe('directories that are missing or lead elsewhere', () => {
  const cache = pod(UID, [{ name: 'cache', emptyDir: {} }]);

  it('a pod whose directory is gone', async () => {
    const err = await failure(findVolumeDir(podsDir, UID, volumeLocation(cache, 'cache')));
    expectCode(err, 'ARCA_AGENT_POD_GONE', 'shop/web-0', UID, 'gone or runs on another node');
  });

  it('a volume not mounted yet, and a CSI volume whose /mount is not there yet', async () => {
    await mkdir(path.join(podsDir, UID, 'volumes'), { recursive: true });
    expectCode(await failure(findVolumeDir(podsDir, UID, volumeLocation(cache, 'cache'))), 'ARCA_AGENT_VOLUME_NOT_MOUNTED', '"cache"', 'not mounted yet', 'kubernetes.io~empty-dir');
    await mkdir(path.join(podsDir, UID, 'volumes', 'kubernetes.io~csi', 'pv-1'), { recursive: true });
    const p = pod(UID, [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }]);
    const location = volumeLocation(p, 'data', boundPv('pv-1', 'c', { csi: { driver: 'd', volumeHandle: 'h' } }));
    expectCode(await failure(findVolumeDir(podsDir, UID, location)), 'ARCA_AGENT_VOLUME_NOT_MOUNTED', 'pv-1/mount');
  });

  it('a volume directory that is a symlink out of the pods directory', async () => {
    const outside = path.join(root, 'etc');
    await mkdir(outside);
    await mkdir(path.join(podsDir, UID, 'volumes', 'kubernetes.io~empty-dir'), { recursive: true });
    await symlink(outside, path.join(podsDir, UID, 'volumes', 'kubernetes.io~empty-dir', 'cache'));
    const err = await failure(findVolumeDir(podsDir, UID, volumeLocation(cache, 'cache')));
    expectCode(err, 'ARCA_AGENT_PATH_ESCAPE', '"cache"', outside, 'symlink');
  });

  it('a plugin folder that is a symlink to another pod\'s volumes', async () => {
    const other = await mountVolume(podsDir, 'other-uid', 'kubernetes.io~empty-dir', 'cache');
    await mkdir(path.join(podsDir, UID, 'volumes'), { recursive: true });
    await symlink(path.dirname(other), path.join(podsDir, UID, 'volumes', 'kubernetes.io~empty-dir'));
    expectCode(await failure(findVolumeDir(podsDir, UID, volumeLocation(cache, 'cache'))), 'ARCA_AGENT_PATH_ESCAPE', other);
  });

  it('a pod directory that is a symlink', async () => {
    await mountVolume(podsDir, 'real-uid', 'kubernetes.io~empty-dir', 'cache');
    await symlink(path.join(podsDir, 'real-uid'), path.join(podsDir, UID));
    expectCode(await failure(findVolumeDir(podsDir, UID, volumeLocation(cache, 'cache'))), 'ARCA_AGENT_PATH_ESCAPE', UID);
  });

  it('a pod UID that would climb out of the pods directory', async () => {
    await mountVolume(root, 'volumes-of-root', 'kubernetes.io~empty-dir', 'cache');
    expectCode(await failure(findVolumeDir(podsDir, '..', volumeLocation(cache, 'cache'))), 'ARCA_AGENT_BAD_NAME', 'pod UID');
    expectCode(await failure(findVolumeDir(podsDir, '../volumes-of-root', volumeLocation(cache, 'cache'))), 'ARCA_AGENT_BAD_NAME');
  });

  it('a pods directory that does not exist says to check --pods-dir', async () => {
    const err = await failure(findVolumeDir(path.join(root, 'nope'), UID, volumeLocation(cache, 'cache')));
    expectCode(err, 'ARCA_AGENT_PODS_DIR', '--pods-dir');
  });
});
