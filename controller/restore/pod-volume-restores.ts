// One PodVolumeRestore per volume of a marked pod, created once its arca-restore-wait init
// container runs: the kubelet starts it only after mounting the pod's volumes, so the agent finds
// them (a pod made from a generateName has no name, UID or node at admission). Names are derived
// from the pod UID and volume, so creating twice is harmless.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, type PodVolumeBackup, type PodVolumeRestore, type VolumeRestore } from '../../kube/api/kinds.ts';
import { NODE_LABEL, RESTORE_INIT_CONTAINER, RESTORE_NAMESPACE_LABEL, RESTORE_VOLUMES_ANNOTATION } from '../../kube/api/labels.ts';

/** The volumes the webhook wrote on the pod: volume name to PodVolumeBackup name; empty if unreadable. */
export function markedVolumes(pod: V1Pod): Map<string, string> {
  const text = pod.metadata?.annotations?.[RESTORE_VOLUMES_ANNOTATION];
  if (text === undefined) return new Map();
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return new Map();
    return new Map(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return new Map();
  }
}

export function podVolumeRestoreName(restore: string, podUid: string, volume: string): string {
  return `${restore}-${createHash('sha256').update(`${podUid}/${volume}`).digest('hex').slice(0, 10)}`;
}

/** The kubelet runs an init container only once the pod's volumes are mounted. */
function restoreWaitRunning(pod: V1Pod): boolean {
  return pod.status?.initContainerStatuses?.some((s) => s.name === RESTORE_INIT_CONTAINER && s.state?.running !== undefined) === true;
}

/** The PodVolumeRestores a marked pod needs; none before its node mounted its volumes (restore-wait runs). */
export function podVolumeRestoresFor(
  restore: VolumeRestore, repository: string, pod: V1Pod, backupNamed: (name: string) => PodVolumeBackup | undefined,
): Omit<PodVolumeRestore, 'apiVersion' | 'kind'>[] {
  const node = pod.spec?.nodeName;
  const { namespace, name, uid } = pod.metadata ?? {};
  const restoreName = restore.metadata.name;
  const restoreUid = restore.metadata.uid;
  if (node === undefined || node === '' || !restoreWaitRunning(pod) || namespace === undefined || name === undefined || uid === undefined || restoreName === undefined || restoreUid === undefined) return [];
  return [...markedVolumes(pod)].flatMap(([volume, source]) => {
    const snapshotID = backupNamed(source)?.status?.snapshotID;
    if (snapshotID === undefined) return [];
    return [{
      metadata: {
        name: podVolumeRestoreName(restoreName, uid, volume),
        labels: { [NODE_LABEL]: node, [RESTORE_NAMESPACE_LABEL]: restoreName },
        ownerReferences: [{ apiVersion: API_VERSION, kind: 'VolumeRestore', name: restoreName, uid: restoreUid, controller: true }],
      },
      spec: { node, pod: { namespace, name, uid }, volume, repository, snapshotID, restoreUID: restoreUid, volumeRestore: restoreName, sourceBackup: source },
    }];
  });
}
