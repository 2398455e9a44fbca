/** A snapshot: the root tree of one backup and what it was of. Stored sealed as JSON. */
export interface BackupSummary {
  readonly files_new: number;
  readonly files_changed: number;
  readonly files_unmodified: number;
  readonly dirs_new: number;
  readonly dirs_changed: number;
  readonly dirs_unmodified: number;
  readonly data_blobs: number;
  readonly tree_blobs: number;
  readonly data_added: number;
  readonly total_files_processed: number;
  readonly total_bytes_processed: number;
  readonly files_unreadable: number;
}

/**
 * A caller's metadata about what a snapshot is of, e.g. the Kubernetes namespace, pod, volume
 * and PVC. Keys and values are strings; readers that predate labels ignore them.
 */
export type SnapshotLabels = Readonly<Record<string, string>>;

/**
 * The metadata of the directory a snapshot has as its root (Snapshot.root): a restore gives it to
 * the target. Times are nanoseconds since the epoch as decimal strings, as in trees.
 */
export interface RootDirMeta {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: string;
  readonly atime: string;
}

export interface Snapshot {
  readonly version: 1;
  readonly time: string;
  /** Root tree ID (hex). */
  readonly tree: string;
  readonly paths: readonly string[];
  /**
   * Set when the backup took its one path as the snapshot's root: `tree` is that directory's
   * contents (not a tree from `/` down to it), so a restore puts them straight into its target and
   * the next backup finds its parent wherever the directory has moved; `paths` then only says
   * where it was. Absent: the tree mirrors the absolute paths.
   */
  readonly root?: RootDirMeta | undefined;
  readonly hostname: string;
  readonly username: string;
  readonly tags: readonly string[];
  /** Absent when the backup was given none. */
  readonly labels?: SnapshotLabels | undefined;
  readonly parent?: string | undefined;
  /** For a snapshot made by `copy` or `repair snapshots`: the ID of the snapshot it came from. */
  readonly original?: string | undefined;
  readonly program_version: string;
  readonly summary?: BackupSummary | undefined;
  /** Set by `repair snapshots`: what was lost and left out of this copy of the snapshot. */
  readonly repaired?: RepairRecord | undefined;
}

export interface RepairRecord {
  readonly time: string;
  /** Files dropped because some of their data is lost. */
  readonly files_removed: readonly string[];
  /** Directories whose listing is lost, kept as empty directories. */
  readonly dirs_emptied: readonly string[];
}

/** A snapshot together with its ID (the BLAKE3 of its stored object). */
export interface StoredSnapshot {
  readonly id: string;
  readonly snapshot: Snapshot;
}

export class SnapshotFormatError extends Error {
  readonly code = 'ARCA_ERR_SNAPSHOT_FORMAT';
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isLabels = (v: unknown): v is SnapshotLabels => typeof v === 'object' && v !== null && !Array.isArray(v)
  && Object.values(v).every((value) => typeof value === 'string');

const isTime = (v: unknown): boolean => typeof v === 'string' && /^-?[0-9]{1,30}$/.test(v);
const isRootDirMeta = (v: unknown): v is RootDirMeta => {
  const r = v as Partial<RootDirMeta> | null;
  return typeof r === 'object' && r !== null && [r.mode, r.uid, r.gid].every((n) => Number.isSafeInteger(n) && (n ?? -1) >= 0)
    && isTime(r.mtime) && isTime(r.atime);
};

export function decodeSnapshot(bytes: Buffer): Snapshot {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new SnapshotFormatError('not JSON');
  }
  const s = json as Partial<Snapshot> | null;
  if (s === null || typeof s !== 'object' || s.version !== 1) throw new SnapshotFormatError('unknown snapshot version');
  if (typeof s.time !== 'string' || Number.isNaN(Date.parse(s.time))) throw new SnapshotFormatError('bad time');
  if (typeof s.tree !== 'string' || !/^[0-9a-f]{64}$/.test(s.tree)) throw new SnapshotFormatError('bad tree ID');
  if (!isStringArray(s.paths) || !isStringArray(s.tags)) throw new SnapshotFormatError('bad paths or tags');
  if (typeof s.hostname !== 'string' || typeof s.username !== 'string') throw new SnapshotFormatError('bad hostname or username');
  if (s.labels !== undefined && !isLabels(s.labels)) throw new SnapshotFormatError('bad labels');
  if (s.root !== undefined && (!isRootDirMeta(s.root) || s.paths.length !== 1)) throw new SnapshotFormatError('bad root directory');
  return s as Snapshot;
}

/** Filters that `latest` and `snapshots` honour. */
export interface SnapshotFilter {
  readonly host?: string | undefined;
  readonly tags?: readonly string[] | undefined;
  readonly paths?: readonly string[] | undefined;
  /** Every one of these labels, with these values. */
  readonly labels?: SnapshotLabels | undefined;
}

export function matchesFilter(s: Snapshot, filter: SnapshotFilter): boolean {
  if (filter.host !== undefined && s.hostname !== filter.host) return false;
  if (filter.labels && !Object.entries(filter.labels).every(([key, value]) => s.labels?.[key] === value)) return false;
  if (filter.tags && !filter.tags.every((t) => s.tags.includes(t))) return false;
  if (filter.paths && !filter.paths.every((p) => s.paths.includes(p))) return false;
  return true;
}

export function newestFirst(a: StoredSnapshot, b: StoredSnapshot): number {
  return Date.parse(b.snapshot.time) - Date.parse(a.snapshot.time) || a.id.localeCompare(b.id);
}
