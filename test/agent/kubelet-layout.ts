import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1PersistentVolume, V1PersistentVolumeSpec, V1Pod, V1Volume } from '@kubernetes/client-node';

/** A scratch directory laid out like a kubelet's pods directory (`<root>/pods`). */
export async function makePodsDir(): Promise<{ root: string; podsDir: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'arca-agent-'));
  const podsDir = path.join(root, 'pods');
  await mkdir(podsDir);
  return { root, podsDir };
}

/** What the kubelet makes when it mounts a volume: `<pods>/<uid>/volumes/<plugin>/<name>[/mount]`. */
export async function mountVolume(podsDir: string, uid: string, plugin: string, name: string, csi = false): Promise<string> {
  const dir = path.join(podsDir, uid, 'volumes', plugin, name, ...(csi ? ['mount'] : []));
  await mkdir(dir, { recursive: true });
  return dir;
}

/** One emptyDir volume of pod `uid`, and a directory `outside` it that nothing may touch. */
export async function volumeAndOutside(uid: string): Promise<{ root: string; volume: string; outside: string }> {
  const { root, podsDir } = await makePodsDir();
  const volume = await mountVolume(podsDir, uid, 'kubernetes.io~empty-dir', 'data');
  const outside = path.join(root, 'outside');
  await mkdir(outside);
  return { root, volume, outside };
}

export function pod(uid: string, volumes: V1Volume[], name = 'web-0', namespace = 'shop'): V1Pod {
  return { metadata: { name, namespace, uid }, spec: { containers: [{ name: 'app', image: 'app' }], volumes } };
}

export function boundPv(name: string, claim: string, source: Partial<V1PersistentVolumeSpec>, namespace = 'shop'): V1PersistentVolume {
  return { metadata: { name }, spec: { claimRef: { namespace, name: claim }, ...source } };
}
