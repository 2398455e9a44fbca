/**
 * Why the agent refused or failed a volume job. Each message is one sentence that ends up in the
 * object's status.message (and the restore's failed marker), so it says which volume and why;
 * reconcilers branch on `code`.
 */
export class VolumeJobError extends Error {
  readonly code: VolumeJobErrorCode;

  constructor(code: VolumeJobErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = 'VolumeJobError';
  }
}

export type VolumeJobErrorCode =
  /** The --pods-dir directory cannot be read: a deployment problem, not the object's. */
  | 'ARCA_AGENT_PODS_DIR'
  /** The pod's directory is not under the pods directory: the pod is gone or runs on another node. */
  | 'ARCA_AGENT_POD_GONE'
  /** The pod spec has no volume of that name. */
  | 'ARCA_AGENT_NO_SUCH_VOLUME'
  /** secret, configMap, projected, downwardAPI, hostPath (or a hostPath PV): never backed up. */
  | 'ARCA_AGENT_VOLUME_KIND_REFUSED'
  /** The claim is not bound to a PersistentVolume yet, or that PV was not given. */
  | 'ARCA_AGENT_CLAIM_UNBOUND'
  /** The volume's directory does not exist (yet): the kubelet has not mounted it. */
  | 'ARCA_AGENT_VOLUME_NOT_MOUNTED'
  /** The volume's path leaves the pods directory or lands elsewhere through a symlink. */
  | 'ARCA_AGENT_PATH_ESCAPE'
  /** The pod runs on another node than the object says (the controller's view was stale). */
  | 'ARCA_AGENT_WRONG_NODE'
  /** The BackupRepository, its Secrets, or what they say cannot open a repository. */
  | 'ARCA_AGENT_REPOSITORY'
  /** The snapshot to restore is not one of a volume (its tree is not a directory's contents, Snapshot.root). */
  | 'ARCA_AGENT_NOT_A_VOLUME'
  /** The job was started too often (the agent restarted during each attempt). */
  | 'ARCA_AGENT_ATTEMPTS'
  /** A name from an object (pod UID, volume, PV, restore UID) that cannot be a path segment. */
  | 'ARCA_AGENT_BAD_NAME';
