/**
 * Where a pod's volume lives on the node: `<pods-dir>/<pod-uid>/volumes/<plugin>/<name>`, the
 * kubelet's layout. `volumeLocation` reads it off the pod spec (and the bound PV); `findVolumeDir`
 * checks it on disk, so a job never runs on the wrong directory: a pod that is gone, a volume not
 * mounted yet, or a path that a symlink leads elsewhere are each a VolumeJobError saying which.
 */
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { V1PersistentVolume, V1PersistentVolumeSpec, V1Pod, V1Volume } from '@kubernetes/client-node';
import { VolumeJobError } from './errors.ts';

/** A directory the kubelet may mount the volume at, below `<pods-dir>/<uid>/volumes/`. */
export interface VolumeDirCandidate {
  /** Plugin folder, e.g. `kubernetes.io~empty-dir`, `kubernetes.io~csi`. */
  readonly plugin: string;
  /** CSI volumes are mounted one level down, at `<name>/mount`. */
  readonly mountSubdir: boolean;
}

/** What the spec says about a volume's place on the node. */
export interface VolumeLocation {
  /** `namespace/name` of the pod, for messages. */
  readonly pod: string;
  readonly volume: string;
  /** The volume source that decides the plugin: `emptyDir`, `csi`, `nfs`... (the PV's, for a claim). */
  readonly kind: string;
  /** The folder name below the plugin folder: the volume's name, or the bound PV's name for a claim. */
  readonly dirName: string;
  /** The PersistentVolumeClaim behind the volume (a persistentVolumeClaim or ephemeral volume). */
  readonly claim?: string | undefined;
  /** In order of preference; in-tree kinds migrated to CSI drivers may sit under either. */
  readonly candidates: readonly VolumeDirCandidate[];
}

/** Never backed up: the API server holds their content, or it is the host's, or the image's. */
const REFUSED_KINDS: Readonly<Record<string, string>> = {
  secret: 'its content comes from a Secret',
  configMap: 'its content comes from a ConfigMap',
  projected: 'its content is projected from API objects',
  downwardAPI: 'its content comes from the pod\'s own fields',
  hostPath: 'it is a directory of the host, not of the pod',
  image: 'its content comes from an image',
};

const CSI: VolumeDirCandidate = { plugin: 'kubernetes.io~csi', mountSubdir: true };

/**
 * In-tree volume sources (pod inline or PV) and their plugin folder; `migrated` ones are served by
 * a CSI driver once CSI migration is on for them, and then mounted under kubernetes.io~csi.
 */
const IN_TREE: Readonly<Record<string, { readonly plugin: string; readonly migrated?: true }>> = {
  emptyDir: { plugin: 'kubernetes.io~empty-dir' },
  gitRepo: { plugin: 'kubernetes.io~git-repo' },
  nfs: { plugin: 'kubernetes.io~nfs' },
  local: { plugin: 'kubernetes.io~local-volume' },
  iscsi: { plugin: 'kubernetes.io~iscsi' },
  fc: { plugin: 'kubernetes.io~fc' },
  rbd: { plugin: 'kubernetes.io~rbd' },
  cephfs: { plugin: 'kubernetes.io~cephfs' },
  glusterfs: { plugin: 'kubernetes.io~glusterfs' },
  quobyte: { plugin: 'kubernetes.io~quobyte' },
  flocker: { plugin: 'kubernetes.io~flocker' },
  scaleIO: { plugin: 'kubernetes.io~scaleio' },
  storageos: { plugin: 'kubernetes.io~storageos' },
  photonPersistentDisk: { plugin: 'kubernetes.io~photon-pd' },
  awsElasticBlockStore: { plugin: 'kubernetes.io~aws-ebs', migrated: true },
  gcePersistentDisk: { plugin: 'kubernetes.io~gce-pd', migrated: true },
  azureDisk: { plugin: 'kubernetes.io~azure-disk', migrated: true },
  azureFile: { plugin: 'kubernetes.io~azure-file', migrated: true },
  cinder: { plugin: 'kubernetes.io~cinder', migrated: true },
  vsphereVolume: { plugin: 'kubernetes.io~vsphere-volume', migrated: true },
  portworxVolume: { plugin: 'kubernetes.io~portworx-volume', migrated: true },
};

/** The first volume-source field set on a pod volume or PV spec (they hold exactly one). */
function sourceKind(source: V1Volume | V1PersistentVolumeSpec): string | undefined {
  const known = ['persistentVolumeClaim', 'ephemeral', 'csi', 'flexVolume', ...Object.keys(REFUSED_KINDS), ...Object.keys(IN_TREE)];
  const present = source as unknown as Readonly<Record<string, unknown>>;
  return known.find((key) => present[key] !== undefined && present[key] !== null);
}

function candidatesFor(kind: string, source: V1Volume | V1PersistentVolumeSpec, what: string): readonly VolumeDirCandidate[] {
  const refused = REFUSED_KINDS[kind];
  if (refused !== undefined) throw new VolumeJobError('ARCA_AGENT_VOLUME_KIND_REFUSED', `${what} is a ${kind} volume, which is never backed up: ${refused}.`);
  if (kind === 'csi') return [CSI];
  // A FlexVolume driver "vendor/driver" has the plugin folder "vendor~driver".
  if (kind === 'flexVolume' && source.flexVolume) return [{ plugin: source.flexVolume.driver.replaceAll('/', '~'), mountSubdir: false }];
  const tree = IN_TREE[kind];
  if (tree === undefined) throw new VolumeJobError('ARCA_AGENT_VOLUME_KIND_REFUSED', `${what} is of a kind the agent does not know (${kind}).`);
  return tree.migrated === true ? [{ plugin: tree.plugin, mountSubdir: false }, CSI] : [{ plugin: tree.plugin, mountSubdir: false }];
}

function podName(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? '?'}/${pod.metadata?.name ?? '?'}`;
}

/**
 * The PersistentVolumeClaim behind a pod volume: a persistentVolumeClaim volume's claim, or the
 * `<pod>-<volume>` claim made for a generic ephemeral volume; undefined for other kinds.
 */
export function claimNameOf(pod: V1Pod, volumeName: string): string | undefined {
  const volume = pod.spec?.volumes?.find((v) => v.name === volumeName);
  if (volume?.persistentVolumeClaim) return volume.persistentVolumeClaim.claimName;
  if (volume?.ephemeral && pod.metadata?.name !== undefined) return `${pod.metadata.name}-${volume.name}`;
  return undefined;
}

/**
 * Where the volume `volumeName` of `pod` lives, from the spec; `pv` is the PersistentVolume its
 * claim is bound to (see claimNameOf), required for claim-backed volumes.
 */
export function volumeLocation(pod: V1Pod, volumeName: string, pv?: V1PersistentVolume): VolumeLocation {
  const what = `Volume "${volumeName}" of pod ${podName(pod)}`;
  const volume = pod.spec?.volumes?.find((v) => v.name === volumeName);
  if (volume === undefined) throw new VolumeJobError('ARCA_AGENT_NO_SUCH_VOLUME', `Pod ${podName(pod)} has no volume named "${volumeName}".`);
  const kind = sourceKind(volume);
  if (kind === undefined) throw new VolumeJobError('ARCA_AGENT_VOLUME_KIND_REFUSED', `${what} has no volume source the agent knows.`);
  const claim = claimNameOf(pod, volumeName);
  if (claim === undefined) return { pod: podName(pod), volume: volumeName, kind, dirName: volumeName, candidates: candidatesFor(kind, volume, what) };

  const pvName = pv?.metadata?.name;
  if (pv?.spec === undefined || pvName === undefined) {
    throw new VolumeJobError('ARCA_AGENT_CLAIM_UNBOUND', `${what} uses claim "${claim}", which is not bound to a PersistentVolume yet.`);
  }
  const ref = pv.spec.claimRef;
  if (ref?.name !== claim || ref.namespace !== pod.metadata?.namespace) {
    throw new VolumeJobError('ARCA_AGENT_CLAIM_UNBOUND', `${what} uses claim "${claim}", but PersistentVolume ${pvName} is bound to ${ref?.namespace ?? '?'}/${ref?.name ?? 'nothing'}.`);
  }
  if (pv.spec.volumeMode === 'Block') {
    throw new VolumeJobError('ARCA_AGENT_VOLUME_KIND_REFUSED', `${what} is the raw block volume ${pvName}, which has no file system to back up.`);
  }
  const pvKind = sourceKind(pv.spec);
  if (pvKind === undefined) throw new VolumeJobError('ARCA_AGENT_VOLUME_KIND_REFUSED', `${what} is backed by PersistentVolume ${pvName}, which has no volume source the agent knows.`);
  return { pod: podName(pod), volume: volumeName, kind: pvKind, dirName: pvName, claim, candidates: candidatesFor(pvKind, pv.spec, `${what} (PersistentVolume ${pvName})`) };
}

/** A name from an API object that becomes one path segment: nothing that could climb out. */
export function assertPathSegment(name: string, what: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new VolumeJobError('ARCA_AGENT_BAD_NAME', `The ${what} "${name}" cannot be a directory name.`);
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * The volume's directory on this node, checked: the pods directory is resolved once (the kubelet
 * root may itself be a symlink), and the volume directory must then be exactly where the layout
 * puts it, a real directory reached through no symlink.
 */
export async function findVolumeDir(podsDir: string, podUid: string, location: VolumeLocation): Promise<string> {
  assertPathSegment(podUid, 'pod UID');
  assertPathSegment(location.dirName, 'volume directory');
  const pods = await realpath(podsDir).catch((err: unknown) => {
    throw new VolumeJobError('ARCA_AGENT_PODS_DIR', `The pods directory ${podsDir} cannot be read (${errnoOf(err) ?? String(err)}); check the agent's --pods-dir.`);
  });
  const podDir = path.join(pods, podUid);
  const podStat = await lstat(podDir).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT') throw new VolumeJobError('ARCA_AGENT_POD_GONE', `Pod ${location.pod} (UID ${podUid}) has no directory in ${podsDir}: the pod is gone or runs on another node.`);
    throw err;
  });
  if (!podStat.isDirectory()) throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `${podDir} is not a directory (a symlink or file where the pod's directory should be); refusing to use it.`);

  const tried: string[] = [];
  for (const candidate of location.candidates) {
    assertPathSegment(candidate.plugin, 'volume plugin folder');
    const expected = path.join(podDir, 'volumes', candidate.plugin, location.dirName, ...(candidate.mountSubdir ? ['mount'] : []));
    tried.push(expected);
    let real: string;
    try {
      real = await realpath(expected);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') continue;
      throw err;
    }
    if (real !== expected) {
      throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `Volume "${location.volume}" of pod ${location.pod} at ${expected} leads to ${real} through a symlink; refusing to use a directory outside the pod's volume.`);
    }
    if (!(await lstat(real)).isDirectory()) {
      throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `Volume "${location.volume}" at ${expected} is not a directory; refusing to use it.`);
    }
    return real;
  }
  throw new VolumeJobError('ARCA_AGENT_VOLUME_NOT_MOUNTED', `Volume "${location.volume}" of pod ${location.pod} is not mounted yet (no directory ${tried.join(' or ')}).`);
}
