// What a VolumeRestore covers: the restorable volumes of its backup set, their source namespaces
// and the target namespaces they map to.
import type { PodVolumeBackup, VolumeRestore } from '../../kube/api/kinds.ts';

const RESTORABLE = new Set(['Completed', 'PartiallyFailed']);

export function targetNamespaceOf(restore: VolumeRestore, source: string): string {
  return restore.spec.namespaceMapping?.[source] ?? source;
}

/** The PodVolumeBackups of the restore's backup set that have a snapshot and pass its namespace filters. */
export function restorableBackups(restore: VolumeRestore, setBackups: readonly PodVolumeBackup[]): PodVolumeBackup[] {
  const { includedNamespaces, excludedNamespaces } = restore.spec;
  return setBackups
    .filter((b) => b.spec.backupSet === restore.spec.volumeBackup && b.status?.snapshotID !== undefined && RESTORABLE.has(b.status.phase ?? ''))
    .filter((b) => (includedNamespaces === undefined || includedNamespaces.length === 0 || includedNamespaces.includes(b.spec.pod.namespace))
      && !(excludedNamespaces ?? []).includes(b.spec.pod.namespace))
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
}

export function targetNamespaces(restore: VolumeRestore, restorable: readonly PodVolumeBackup[]): string[] {
  return [...new Set(restorable.map((b) => targetNamespaceOf(restore, b.spec.pod.namespace)))].sort();
}

/** The restorable volumes whose pods map to `target`. */
export function backupsForTarget(restore: VolumeRestore, restorable: readonly PodVolumeBackup[], target: string): PodVolumeBackup[] {
  return restorable.filter((b) => targetNamespaceOf(restore, b.spec.pod.namespace) === target);
}
