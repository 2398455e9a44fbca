// The change the restore webhook makes to a pod: the arca-restore-wait init container first in
// line, mounting the volumes to restore, and the marks the controller later finds the pod by.
// Expressed as an RFC 6902 JSON patch, as admission responses carry it.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { RESTORE_INIT_CONTAINER, RESTORE_NAMESPACE_LABEL, RESTORE_VOLUMES_ANNOTATION } from '../../kube/api/labels.ts';
import type { VolumeMatch } from './volume-matching.ts';

export type JsonPatchOperation = { op: 'add'; path: string; value: unknown };

/** Where the init container mounts each volume it waits for. */
const MOUNT_ROOT = '/arca-restore';

export interface RestoreMark {
  /** The VolumeRestore's name (label value) and UID (the done markers' name). */
  restoreName: string;
  restoreUid: string;
  image: string;
}

function pointerEscape(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function restoreWaitContainer(mark: RestoreMark, volumes: readonly string[]): V1Container {
  return {
    name: RESTORE_INIT_CONTAINER,
    image: mark.image,
    imagePullPolicy: 'IfNotPresent',
    args: ['restore-wait', '--restore-uid', mark.restoreUid, ...volumes.map((v) => `${MOUNT_ROOT}/${v}`)],
    volumeMounts: volumes.map((v) => ({ name: v, mountPath: `${MOUNT_ROOT}/${v}` })),
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
  };
}

/** True when the pod was already changed (a reinvocation or a copy of a changed pod). */
export function alreadyMarked(pod: V1Pod): boolean {
  return (pod.spec?.initContainers ?? []).some((c) => c.name === RESTORE_INIT_CONTAINER);
}

export function restorePatch(pod: V1Pod, mark: RestoreMark, matches: readonly VolumeMatch[]): JsonPatchOperation[] {
  const container = restoreWaitContainer(mark, matches.map((m) => m.volume));
  const volumes = JSON.stringify(Object.fromEntries(matches.map((m) => [m.volume, m.source.metadata.name])));
  const ops: JsonPatchOperation[] = [];
  ops.push(pod.spec?.initContainers === undefined
    ? { op: 'add', path: '/spec/initContainers', value: [container] }
    : { op: 'add', path: '/spec/initContainers/0', value: container });
  const add = (field: 'labels' | 'annotations', key: string, value: string) => {
    ops.push(pod.metadata?.[field] === undefined
      ? { op: 'add', path: `/metadata/${field}`, value: { [key]: value } }
      : { op: 'add', path: `/metadata/${field}/${pointerEscape(key)}`, value });
  };
  add('labels', RESTORE_NAMESPACE_LABEL, mark.restoreName);
  add('annotations', RESTORE_VOLUMES_ANNOTATION, volumes);
  return ops;
}
