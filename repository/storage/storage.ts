import { ArcaError } from '../errors.ts';

/**
 * The one interface every backend implements (local directory now; S3, Azure, GCS later).
 * Object names are '/'-separated relative paths such as "index/<hex>" or "data/ab/<hex>".
 * Objects are immutable: a name is written once; writers never modify, only create and delete.
 */
export interface Storage {
  /** Human-readable location for messages, e.g. "/srv/repo" or "s3://bucket/prefix". */
  readonly location: string;
  /**
   * Store an object atomically: readers see either nothing or the whole object. The content may
   * come in parts (a pack's blobs), which saves assembling one large buffer.
   */
  put(name: string, data: ObjectContent): Promise<void>;
  /** Read a whole object, or `length` bytes from `offset`. Throws ObjectNotFoundError. */
  get(name: string, range?: ByteRange): Promise<Buffer>;
  /** Size of an object. Throws ObjectNotFoundError. */
  stat(name: string): Promise<ObjectInfo>;
  /** Every object whose name starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Remove an object; removing an absent object is not an error. */
  delete(name: string): Promise<void>;
}

export type ObjectContent = Uint8Array | readonly Uint8Array[];

/** The parts of an object's content, for backends that write them one after another. */
export function contentParts(data: ObjectContent): readonly Uint8Array[] {
  return data instanceof Uint8Array ? [data] : data;
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

export interface ObjectInfo {
  readonly name: string;
  readonly size: number;
}

export class ObjectNotFoundError extends ArcaError {
  readonly objectName: string;

  constructor(location: string, objectName: string) {
    super('ARCA_ERR_OBJECT_NOT_FOUND', `Object ${objectName} does not exist in ${location}.`);
    this.objectName = objectName;
  }
}

/** Any other failure of the storage itself (permissions, I/O, network after retries). */
export class StorageError extends ArcaError {
  constructor(location: string, action: string, options?: ErrorOptions) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('ARCA_ERR_STORAGE', `Storage ${location} failed to ${action}${cause}.`, options);
  }
}

/** A range read that returned fewer bytes than asked: the object is shorter than its index says. */
export class ShortReadError extends ArcaError {
  constructor(location: string, objectName: string, range: ByteRange, got: number) {
    super('ARCA_ERR_SHORT_READ', `Object ${objectName} in ${location} ended early: asked for ${range.length} bytes at ${range.offset}, got ${got}.`);
  }
}

const VALID_NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;

/** Rejects names that could step outside the repository (".." or absolute) or are not ours. */
export function assertObjectName(name: string): void {
  if (!VALID_NAME.test(name) || name.split('/').includes('..')) {
    throw new ArcaError('ARCA_ERR_OBJECT_NAME', `Invalid object name "${name}".`);
  }
}
