// The PodVolumeBackups a VolumeBackup makes: one per selected volume of each running, scheduled
// pod in its namespaces; pods that cannot be backed up now are reported with the reason.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, type PodVolumeBackup, type VolumeBackup } from '../../kube/api/kinds.ts';
import { BACKUP_SET_LABEL, NODE_LABEL } from '../../kube/api/labels.ts';
import { matchesSelector } from '../label-selector.ts';
import { ownerWorkload } from '../pods.ts';
import { volumesToBackUp } from './volume-selection.ts';

export type NewPodVolumeBackup = Omit<PodVolumeBackup, 'apiVersion' | 'kind'>;

export interface SkippedPod {
  namespace: string;
  name: string;
  reason: string;
}

export interface BackupPlan {
  podVolumeBackups: NewPodVolumeBackup[];
  skippedPods: SkippedPod[];
}

export function selectsNamespace(backup: VolumeBackup, namespace: string): boolean {
  const { includedNamespaces = [], excludedNamespaces = [] } = backup.spec;
  return (includedNamespaces.length === 0 || includedNamespaces.includes(namespace)) && !excludedNamespaces.includes(namespace);
}

export function podVolumeBackupName(backup: string, podUid: string, volume: string): string {
  return `${backup}-${createHash('sha256').update(`${podUid}/${volume}`).digest('hex').slice(0, 10)}`;
}

export function planBackup(backup: VolumeBackup, pods: readonly V1Pod[]): BackupPlan {
  const plan: BackupPlan = { podVolumeBackups: [], skippedPods: [] };
  const setName = backup.metadata.name ?? '';
  const setUid = backup.metadata.uid ?? '';
  for (const pod of pods) {
    const { namespace = '', name = '', uid = '', labels } = pod.metadata ?? {};
    if (!selectsNamespace(backup, namespace) || !matchesSelector(backup.spec.labelSelector, labels)) continue;
    const volumes = volumesToBackUp(pod, backup.spec.defaultVolumesToBackup === true);
    if (volumes.length === 0) continue;
    const node = pod.spec?.nodeName;
    if (node === undefined || node === '') {
      plan.skippedPods.push({ namespace, name, reason: 'not scheduled to a node' });
      continue;
    }
    if (pod.status?.phase !== 'Running') {
      plan.skippedPods.push({ namespace, name, reason: `not running (phase ${pod.status?.phase ?? 'unknown'})` });
      continue;
    }
    const workload = ownerWorkload(pod);
    const claims = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v.persistentVolumeClaim?.claimName]));
    for (const volume of volumes) {
      const pvcName = claims.get(volume);
      plan.podVolumeBackups.push({
        metadata: {
          name: podVolumeBackupName(setName, uid, volume),
          labels: { [NODE_LABEL]: node, [BACKUP_SET_LABEL]: setName },
          ownerReferences: [{ apiVersion: API_VERSION, kind: 'VolumeBackup', name: setName, uid: setUid, controller: true }],
        },
        spec: {
          node, pod: { namespace, name, uid }, volume, repository: backup.spec.repository, backupSet: setName,
          ...(pvcName === undefined ? {} : { pvcName }),
          ...(workload === undefined ? {} : { ownerWorkload: workload }),
          ...(backup.spec.tags === undefined ? {} : { tags: backup.spec.tags }),
        },
      });
    }
  }
  return plan;
}
