// The restore webhook's decision for one new pod: which restore its namespace is a target of, which
// backed-up volumes its volumes match, and the patch that makes it wait for them. A pod that
// matches nothing gets no patch.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodVolumeBackup, VolumeRestore } from '../../kube/api/kinds.ts';
import { matchesSelector } from '../label-selector.ts';
import { alreadyMarked, restorePatch, type JsonPatchOperation } from './pod-mutation.ts';
import { backupsForTarget, restorableBackups } from './restore-plan.ts';
import { matchVolumes } from './volume-matching.ts';

export interface RestoreState {
  /** The VolumeRestores of the controller namespace. */
  restores(): readonly VolumeRestore[];
  /** The PodVolumeBackups of one backup set. */
  backupsOfSet(set: string): readonly PodVolumeBackup[];
}

/** A restore that is running and has labelled `namespace`. */
export function activeRestoreFor(state: RestoreState, namespace: string): VolumeRestore | undefined {
  return state.restores().find((r) => r.status?.phase === 'InProgress' && r.spec.cancel !== true && r.metadata.deletionTimestamp === undefined
    && (r.status.targetNamespaces ?? []).includes(namespace));
}

export function admitPod(pod: V1Pod, namespace: string, state: RestoreState, image: string): JsonPatchOperation[] | undefined {
  if (alreadyMarked(pod)) return undefined;
  const restore = activeRestoreFor(state, namespace);
  if (restore === undefined || !matchesSelector(restore.spec.labelSelector, pod.metadata?.labels)) return undefined;
  const { name, uid } = restore.metadata;
  if (name === undefined || uid === undefined) return undefined;
  const candidates = backupsForTarget(restore, restorableBackups(restore, state.backupsOfSet(restore.spec.volumeBackup)), namespace);
  const matches = matchVolumes(pod, candidates);
  if (matches.length === 0) return undefined;
  return restorePatch(pod, { restoreName: name, restoreUid: uid, image }, matches);
}
