// Label and annotation keys that agent, controller, webhook and manifests agree on.

/** On PodVolumeBackup/PodVolumeRestore: the node whose agent handles the object (agents watch by it). */
export const NODE_LABEL = 'arca.dev/node';
/** On a namespace: the VolumeRestore it is a target of; the webhook only sees labelled namespaces. */
export const RESTORE_NAMESPACE_LABEL = 'arca.dev/restore';
/** On PodVolumeBackups and VolumeBackups: the backup set (VolumeBackup name) they belong to. */
export const BACKUP_SET_LABEL = 'arca.dev/backup-set';

/** Opt-in list of volumes to back up, then the opt-out list; the first of each that is set wins. */
export const BACKUP_VOLUMES_ANNOTATIONS = ['backup.arca.dev/backup-volumes', 'backup.velero.io/backup-volumes', 'backup.ark.heptio.com/backup-volumes'] as const;
export const BACKUP_VOLUMES_EXCLUDES_ANNOTATIONS = ['backup.arca.dev/backup-volumes-excludes', 'backup.velero.io/backup-volumes-excludes', 'backup.ark.heptio.com/backup-volumes-excludes'] as const;
