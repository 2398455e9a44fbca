// Which backed-up volume a new pod's volume is restored from, decided at admission: by PVC name;
// else the same workload and volume (a StatefulSet's pod by its ordinal); else the same pod name
// and volume. A backed-up volume is used at most once per pod.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodVolumeBackup } from '../../kube/api/kinds.ts';
import { holdsPodData, ownerWorkload, statefulSetOrdinal } from '../pods.ts';

export interface VolumeMatch {
  /** The volume in the new pod. */
  volume: string;
  /** The PodVolumeBackup whose snapshot it gets. */
  source: PodVolumeBackup;
}

/**
 * Matches the volumes of `pod` against `backups`: the restorable PodVolumeBackups of the pod's
 * source namespace, in a stable order (the first of several equal candidates wins).
 */
export function matchVolumes(pod: V1Pod, backups: readonly PodVolumeBackup[]): VolumeMatch[] {
  const podName = pod.metadata?.name;
  const workload = ownerWorkload(pod);
  const used = new Set<PodVolumeBackup>();
  const matches: VolumeMatch[] = [];
  const take = (volume: string, test: (b: PodVolumeBackup) => boolean): boolean => {
    const source = backups.find((b) => !used.has(b) && test(b));
    if (source === undefined) return false;
    used.add(source);
    matches.push({ volume, source });
    return true;
  };
  for (const volume of pod.spec?.volumes ?? []) {
    if (!holdsPodData(volume)) continue;
    const claim = volume.persistentVolumeClaim?.claimName;
    if (claim !== undefined && take(volume.name, (b) => b.spec.pvcName === claim)) continue;
    const sameWorkload = workload !== undefined && take(volume.name, (b) => {
      const owner = b.spec.ownerWorkload;
      if (owner?.kind !== workload.kind || owner.name !== workload.name || b.spec.volume !== volume.name) return false;
      if (workload.kind !== 'StatefulSet') return true;
      const ordinal = podName === undefined ? undefined : statefulSetOrdinal(podName, workload.name);
      return ordinal !== undefined && ordinal === statefulSetOrdinal(b.spec.pod.name, owner.name);
    });
    if (!sameWorkload && podName !== undefined) take(volume.name, (b) => b.spec.pod.name === podName && b.spec.volume === volume.name);
  }
  return matches;
}
