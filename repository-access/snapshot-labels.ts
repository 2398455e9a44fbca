/**
 * What a pod volume's snapshot records about where it came from (the snapshot's labels), and what
 * makes two snapshots "of the same volume" so a backup finds its parent after a pod restart or a
 * move to another node. The controller's sync reads the same labels back to rebuild backup sets.
 */

/** Label keys in the snapshot (the engine's SnapshotLabels). */
export const SNAPSHOT_LABELS = {
  cluster: 'arca.dev/cluster',
  namespace: 'arca.dev/namespace',
  pod: 'arca.dev/pod',
  podUid: 'arca.dev/pod-uid',
  volume: 'arca.dev/volume',
  pvc: 'arca.dev/pvc',
  workloadKind: 'arca.dev/workload-kind',
  workload: 'arca.dev/workload',
  node: 'arca.dev/node',
  backupSet: 'arca.dev/backup-set',
  podVolumeBackupUid: 'arca.dev/pod-volume-backup-uid',
} as const;

export interface WorkloadRef {
  readonly kind: string;
  readonly name: string;
}

export interface VolumeSnapshotMetadata {
  /** The cluster's name as configured for Arca: the same namespace and PVC in two clusters are two volumes. */
  readonly cluster: string;
  readonly namespace: string;
  readonly pod: string;
  readonly podUid: string;
  /** The volume's name in the pod spec. */
  readonly volume: string;
  readonly pvc?: string | undefined;
  /** The controller that owns the pod (StatefulSet, Deployment...), if any. */
  readonly workload?: WorkloadRef | undefined;
  /** The node the backup ran on. */
  readonly node: string;
  /** The VolumeBackup this snapshot belongs to. */
  readonly backupSet: string;
  /**
   * The UID of the PodVolumeBackup that made it: a re-run of that job (its status was not written
   * after the snapshot was) finds its snapshot by it instead of making a second one.
   */
  readonly podVolumeBackupUid?: string | undefined;
}

export function snapshotLabels(meta: VolumeSnapshotMetadata): Record<string, string> {
  return {
    [SNAPSHOT_LABELS.cluster]: meta.cluster,
    [SNAPSHOT_LABELS.namespace]: meta.namespace,
    [SNAPSHOT_LABELS.pod]: meta.pod,
    [SNAPSHOT_LABELS.podUid]: meta.podUid,
    [SNAPSHOT_LABELS.volume]: meta.volume,
    ...(meta.pvc === undefined ? {} : { [SNAPSHOT_LABELS.pvc]: meta.pvc }),
    ...(meta.workload === undefined ? {} : { [SNAPSHOT_LABELS.workloadKind]: meta.workload.kind, [SNAPSHOT_LABELS.workload]: meta.workload.name }),
    [SNAPSHOT_LABELS.node]: meta.node,
    [SNAPSHOT_LABELS.backupSet]: meta.backupSet,
    ...(meta.podVolumeBackupUid === undefined ? {} : { [SNAPSHOT_LABELS.podVolumeBackupUid]: meta.podVolumeBackupUid }),
  };
}

/** The metadata back from a snapshot's labels; undefined when they are not a pod volume's. */
export function metadataFromLabels(labels: Readonly<Record<string, string>> | undefined): VolumeSnapshotMetadata | undefined {
  if (labels === undefined) return undefined;
  const get = (key: string): string | undefined => labels[key];
  const [cluster, namespace, pod, podUid, volume, node, backupSet] = [
    SNAPSHOT_LABELS.cluster, SNAPSHOT_LABELS.namespace, SNAPSHOT_LABELS.pod, SNAPSHOT_LABELS.podUid,
    SNAPSHOT_LABELS.volume, SNAPSHOT_LABELS.node, SNAPSHOT_LABELS.backupSet,
  ].map(get);
  if (cluster === undefined || namespace === undefined || pod === undefined || podUid === undefined
    || volume === undefined || node === undefined || backupSet === undefined) return undefined;
  const kind = get(SNAPSHOT_LABELS.workloadKind);
  const name = get(SNAPSHOT_LABELS.workload);
  return {
    cluster, namespace, pod, podUid, volume, node, backupSet,
    pvc: get(SNAPSHOT_LABELS.pvc),
    workload: kind !== undefined && name !== undefined ? { kind, name } : undefined,
    podVolumeBackupUid: get(SNAPSHOT_LABELS.podVolumeBackupUid),
  };
}

/**
 * The labels that identify "this volume" across snapshots, for choosing a backup's parent (the
 * newest snapshot carrying all of them):
 * - a claim-backed volume is its PVC (it outlives pods and follows them to other nodes);
 * - otherwise the owning workload and the volume name, and for a StatefulSet also the pod name,
 *   whose ordinal tells its replicas' volumes apart;
 * - otherwise (a bare pod) the pod name and the volume name.
 * Never the pod UID or the node: both change when a pod is recreated or moves.
 */
export function volumeIdentityLabels(meta: VolumeSnapshotMetadata): Record<string, string> {
  const scope = { [SNAPSHOT_LABELS.cluster]: meta.cluster, [SNAPSHOT_LABELS.namespace]: meta.namespace };
  if (meta.pvc !== undefined) return { ...scope, [SNAPSHOT_LABELS.pvc]: meta.pvc };
  const volume = { [SNAPSHOT_LABELS.volume]: meta.volume };
  const pod = { [SNAPSHOT_LABELS.pod]: meta.pod };
  if (meta.workload === undefined) return { ...scope, ...pod, ...volume };
  const workload = { [SNAPSHOT_LABELS.workloadKind]: meta.workload.kind, [SNAPSHOT_LABELS.workload]: meta.workload.name };
  return meta.workload.kind === 'StatefulSet' ? { ...scope, ...workload, ...pod, ...volume } : { ...scope, ...workload, ...volume };
}

