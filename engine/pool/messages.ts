import type { NodeMetadata } from '../fs/metadata.ts';
import type { Conflicts, Verdict } from '../fs/safe-fs.ts';
import type { NodeType } from '../../repository/tree/tree.ts';

/**
 * Messages between the main thread and pool workers. Every message names the task it belongs to;
 * a task ends with `done` or `failed`. IDs travel packed: n × 32 bytes in one Uint8Array.
 */
export interface WorkerSetup {
  readonly encKey: Uint8Array;
  readonly idKey: Uint8Array;
  readonly chunkerKey: Uint8Array;
  readonly chunker: { readonly minSize: number; readonly avgSize: number; readonly maxSize: number };
  readonly compressionLevel: number;
  /**
   * Where a backup's workers write the packs of the blobs they seal (PackSpool), one pack each
   * at a time; absent for pools that seal nothing (restore).
   */
  readonly spool?: { readonly dir: string; readonly packSize: number } | undefined;
}

/** Chunk, hash, dedup (by asking the main thread) and seal one regular file. */
export interface ChunkFileTask {
  readonly kind: 'chunk-file';
  /** The file's path through its directory's handle (handles.ts atPath). */
  readonly path: Uint8Array;
  /** What its directory's listing saw: the file opened must be this one (else ARCA_ERR_ENTRY_CHANGED). */
  readonly dev: bigint;
  readonly ino: bigint;
  /** Its size when listed: a file growing while read is cut there. */
  readonly size: number;
  /**
   * Seal every chunk without asking which to store, and return them all with the result. For
   * small files: sealing a few KiB costs less than the round trip to the main thread, which
   * then keeps the blobs it has not seen and drops the rest.
   */
  readonly sealUnasked: boolean;
}

/**
 * List a new directory (one the parent snapshot does not have) for a backup: lstat every entry
 * (excluded names are left out), read the link target of symlinks, and chunk and seal (unasked)
 * the small regular files, so the main thread gets one message per directory instead of a
 * round trip per entry. Larger files, files with several links and other types are left to the
 * main thread.
 */
export interface ScanDirTask {
  readonly kind: 'scan-dir';
  /** The directory's path, for excludes and messages: it is read through `dirFd` only. */
  readonly path: Uint8Array;
  /** The directory, open in this process (handles.ts); the caller closes it when the task ends. */
  readonly dirFd: number;
  /** st_dev of the directory: subdirectories on another file system are never descended into. */
  readonly dev: bigint;
  readonly excludes: readonly string[];
  /** Regular files up to this size are read here. */
  readonly readUpTo: number;
  /** Record access times (BackupOptions.withAtime), for the trees a scan saves. */
  readonly withAtime: boolean;
  /**
   * Descend into subdirectories (new as well) while the task has listed fewer entries than
   * this, so a small subtree costs one message; 0: never.
   */
  readonly descendUpTo: number;
}

/**
 * Open, decompress and verify blobs cut from one pack range, and write each where restore wants
 * it. The worker writes itself, so plaintext never travels back to the main thread.
 */
export interface WriteBlobsTask {
  readonly kind: 'write-blobs';
  /** The restore target, open in this process: every path below is relative to it (TargetDirs). */
  readonly rootFd: number;
  readonly data: Uint8Array;
  /** Per blob: offset and length inside `data`, its ID, and its plaintext length (a size hint). */
  readonly blobs: ReadonlyArray<{ readonly offset: number; readonly length: number; readonly id: Uint8Array; readonly rawLength: number }>;
  /**
   * Positioned writes: blob number, path of a regular file the restore created (opened with
   * O_NOFOLLOW, never created here), and the offset in that file.
   */
  readonly writes: ReadonlyArray<{
    readonly blob: number;
    readonly path: Uint8Array;
    readonly offset: number;
    /**
     * The file does not exist yet and this blob is all of it: create it here (safe-fs.ts
     * openNewFile), saving the restore a separate open and close to create it first.
     */
    readonly create: boolean;
  }>;
}

/** Create regular files of the given sizes for a restore (safe-fs.ts createFile), in one batch. */
export interface CreateFilesTask {
  readonly kind: 'create-files';
  readonly rootFd: number;
  readonly files: ReadonlyArray<{ readonly path: Uint8Array; readonly size: number }>;
}

/** Make directories whose parents exist (safe-fs.ts ensureDirectory), in one batch. */
export interface MakeDirsTask {
  readonly kind: 'make-dirs';
  readonly rootFd: number;
  readonly rules: Conflicts;
  readonly paths: readonly Uint8Array[];
}

/** Apply restored nodes' metadata (metadata.ts applyMetadata), in one batch. */
export interface ApplyMetadataTask {
  readonly kind: 'apply-metadata';
  readonly rootFd: number;
  readonly nodes: readonly NodeMetadata[];
}

/**
 * Decide what happens to what stands where nodes (not directories) go, in directories that
 * existed before the restore (safe-fs.ts inspectExisting); for if-changed, an existing file of
 * the right size is read and its chunks hashed against `content`, whose lengths are `lengths`.
 */
export interface InspectTask {
  readonly kind: 'inspect';
  readonly rootFd: number;
  readonly rules: Conflicts;
  readonly nodes: ReadonlyArray<{
    readonly path: Uint8Array;
    readonly type: NodeType;
    readonly size: number;
    readonly mtimeNs: bigint;
    /** Chunk IDs, packed, and their plaintext lengths (files only). */
    readonly content: Uint8Array;
    readonly lengths: Uint32Array;
  }>;
}

export type FsBatchTask = CreateFilesTask | MakeDirsTask | ApplyMetadataTask | InspectTask;

/** Finish the worker's spooled pack, if it holds anything (a `pack` question), at the end of a backup. */
export interface FlushSpoolTask {
  readonly kind: 'flush-spool';
}

export type TaskRequest = ChunkFileTask | ScanDirTask | WriteBlobsTask | FsBatchTask | FlushSpoolTask;

export interface ChunkFileResult {
  readonly kind: 'chunk-file';
  /** Chunk IDs in file order, packed. */
  readonly content: Uint8Array;
  readonly size: number;
  /** The last batch of claimed blobs, sent with the result to save a round trip. */
  readonly blobs: readonly StoredBlobMessage[];
}

/** What the worker did with one listed entry beyond lstat; null: nothing (the main thread goes on). */
export type ScannedOutcome =
  | { readonly kind: 'stat-failed'; readonly failure: WorkerFailure }
  | { readonly kind: 'read'; /** Chunk IDs, packed. */ readonly content: Uint8Array; readonly size: number }
  | { readonly kind: 'symlink'; readonly target: Uint8Array }
  | { readonly kind: 'read-failed'; readonly failure: WorkerFailure }
  | { readonly kind: 'dir'; /** The subdirectory, scanned in the same task. */ readonly listing: ScannedDir }
  | {
    readonly kind: 'saved-dir';
    /**
     * The subdirectory was scanned in the same task and everything in it could be read there,
     * so the worker saved its tree (and those below it): this is the tree's ID, the tree blobs
     * travel with the data blobs.
     */
    readonly subtree: Uint8Array;
    readonly counts: SavedCounts;
  }
  | null;

/** What a subtree saved in a worker holds, for the backup's summary and progress. */
export interface SavedCounts {
  /** Directories, this one included. */
  readonly dirs: number;
  readonly files: number;
  readonly bytes: number;
}

/** One directory's entries, in the order listed. */
export interface ScannedDir {
  /** Entry names back to back; entry i ends at nameEnds[i]. */
  readonly names: Uint8Array;
  readonly nameEnds: Uint32Array;
  /** Entry i's lstat at i × STAT_SLOTS (entry-stat.ts packStat); zeros where lstat failed. */
  readonly stats: BigInt64Array;
  readonly outcomes: readonly ScannedOutcome[];
}

/** Its blobs came as questions (`claim` and `store`) on the way. */
export interface ScanDirResult extends ScannedDir {
  readonly kind: 'scan-dir';
}

export interface StoredBlobMessage {
  /** A tree a directory scan saved; otherwise file data. */
  readonly isTree?: boolean;
  readonly id: Uint8Array;
  readonly sealed: Uint8Array;
  readonly rawLength: number;
}

export interface WriteBlobsResult {
  readonly kind: 'write-blobs';
  /** Per write: undefined when done, else why it failed. */
  readonly failures: ReadonlyArray<WorkerFailure | undefined>;
  /** Plaintext bytes of all writes done. */
  readonly bytes: number;
}

/** The outcome of an FsBatchTask: per item, undefined when done, else why it failed. */
export interface FsBatchResult {
  readonly kind: 'fs-batch';
  readonly failures: ReadonlyArray<WorkerFailure | undefined>;
  /** Per item that succeeded, for make-dirs whether it was made or existed, for inspect the verdict. */
  readonly outcomes: ReadonlyArray<'made' | 'existed' | Verdict | undefined>;
}

export type TaskResult = ChunkFileResult | ScanDirResult | WriteBlobsResult | FsBatchResult | { readonly kind: 'flush-spool' };

/** A pack a worker spooled (PackSpool): the file to store, then the entries to index. */
export interface SpooledPackMessage {
  readonly file: string;
  readonly id: Uint8Array;
  readonly size: number;
  readonly blobs: ReadonlyArray<{ readonly id: Uint8Array; readonly type: 'data' | 'tree'; readonly offset: number; readonly length: number; readonly rawLength: number }>;
}

/** Worker → main, in the middle of a chunk-file or scan-dir task. */
export type TaskQuestion =
  | { readonly kind: 'claim'; readonly ids: Uint8Array; /** Bytes these chunks hold, for progress. */ readonly bytes: number }
  | { readonly kind: 'store'; readonly blobs: readonly StoredBlobMessage[] }
  /** A spooled pack is complete: store and index it (answered once it is on its way). */
  | { readonly kind: 'pack'; readonly pack: SpooledPackMessage };

/** The main thread's answer to a question: claimed flags for `claim`, nothing for `store`. */
export type TaskAnswer = { readonly kind: 'claim'; readonly mine: readonly boolean[] } | { readonly kind: 'store' } | { readonly kind: 'pack' };

export type ToWorker =
  | { readonly type: 'task'; readonly task: number; readonly request: TaskRequest }
  | { readonly type: 'answer'; readonly task: number; readonly answer: TaskAnswer };

export type FromWorker =
  | { readonly type: 'question'; readonly task: number; readonly question: TaskQuestion }
  | { readonly type: 'done'; readonly task: number; readonly result: TaskResult }
  | { readonly type: 'failed'; readonly task: number; readonly error: WorkerFailure };

/** The code of a write that failed because its blob did not decode (damage, not the file system). */
export const BLOB_DAMAGED = 'ARCA_ERR_BLOB_DAMAGED';
/**
 * The code of a task that failed after blobs it claimed were promised to the main thread (the
 * spool could not be written): the backup cannot go on without them.
 */
export const SPOOL_FAILED = 'ARCA_ERR_SPOOL';

export interface WorkerFailure {
  readonly message: string;
  /** errno code such as EACCES for file errors, or our error code. */
  readonly code?: string | undefined;
}

/** The parts of an error that survive a message. */
export function failureOf(err: unknown): WorkerFailure {
  const e = err as NodeJS.ErrnoException;
  return { message: e.message, code: typeof e.code === 'string' ? e.code : undefined };
}

const ID_LENGTH = 32;

/** IDs in one buffer of its own, n × 32 bytes, as messages carry them. */
export function packIds(ids: readonly Uint8Array[]): Buffer<ArrayBuffer> {
  const packed = Buffer.allocUnsafeSlow(ids.length * ID_LENGTH);
  ids.forEach((id, i) => { packed.set(id, i * ID_LENGTH); });
  return packed;
}

/** The IDs in a packed buffer (packIds), each a buffer of its own. */
export function splitIds(packed: Uint8Array): Buffer[] {
  const ids: Buffer[] = [];
  for (let at = 0; at < packed.length; at += ID_LENGTH) ids.push(Buffer.from(packed.subarray(at, at + ID_LENGTH)));
  return ids;
}

/** The memory behind `view` as a transfer list: it can move to the other thread only when the view owns all of it. */
export function transferable(view: Uint8Array): ArrayBuffer[] {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer ? [view.buffer] : [];
}
