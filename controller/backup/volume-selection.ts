// Which volumes of a pod a backup takes: those its opt-in annotation names, or with
// defaultVolumesToBackup every volume holding pod data except those its opt-out annotation names.
// Arca's, Velero's and Heptio Ark's annotation names all count (the first one present wins).
import type { V1Pod } from '@kubernetes/client-node';
import { BACKUP_VOLUMES_ANNOTATIONS, BACKUP_VOLUMES_EXCLUDES_ANNOTATIONS } from '../../kube/api/labels.ts';
import { holdsPodData } from '../pods.ts';

function listAnnotation(pod: V1Pod, keys: readonly string[]): string[] | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  const key = keys.find((k) => annotations[k] !== undefined);
  if (key === undefined) return undefined;
  return (annotations[key] ?? '').split(',').map((v) => v.trim()).filter((v) => v !== '');
}

export function volumesToBackUp(pod: V1Pod, defaultVolumesToBackup: boolean): string[] {
  const eligible = (pod.spec?.volumes ?? []).filter(holdsPodData).map((v) => v.name);
  const included = listAnnotation(pod, BACKUP_VOLUMES_ANNOTATIONS);
  if (included !== undefined) return eligible.filter((v) => included.includes(v));
  if (!defaultVolumesToBackup) return [];
  const excluded = listAnnotation(pod, BACKUP_VOLUMES_EXCLUDES_ANNOTATIONS) ?? [];
  return eligible.filter((v) => !excluded.includes(v));
}
