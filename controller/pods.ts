// What the controller reads from pods: the workload that owns one, the StatefulSet ordinal, and
// which volumes hold data worth backing up. Shared by backups (recorded in each PodVolumeBackup)
// and restores (matched against those records at admission).
import type { V1Pod, V1Volume } from '@kubernetes/client-node';

export interface Workload {
  kind: string;
  name: string;
}

/**
 * The workload behind a pod: its controller owner, with a Deployment's ReplicaSet (`<deployment>-<pod-template-hash>`)
 * taken back to the Deployment, so a volume is followed across rollouts.
 */
export function ownerWorkload(pod: V1Pod): Workload | undefined {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  if (owner === undefined) return undefined;
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash !== undefined && owner.name.endsWith(`-${hash}`)) {
    return { kind: 'Deployment', name: owner.name.slice(0, -hash.length - 1) };
  }
  return { kind: owner.kind, name: owner.name };
}

/** The ordinal of a StatefulSet's pod (`web-2` of StatefulSet `web` is 2). */
export function statefulSetOrdinal(podName: string, statefulSet: string): number | undefined {
  const match = /^-(\d+)$/.exec(podName.slice(statefulSet.length));
  return podName.startsWith(statefulSet) && match?.[1] !== undefined ? Number(match[1]) : undefined;
}

/** Volumes that are copies of cluster state or of the host, never pod data: never backed up or restored. */
export function holdsPodData(volume: V1Volume): boolean {
  return volume.secret === undefined && volume.configMap === undefined && volume.projected === undefined
    && volume.downwardAPI === undefined && volume.hostPath === undefined;
}
