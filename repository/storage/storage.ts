import { promises as fsp } from 'node:fs';
import { ArcaError } from '../errors.ts';

/**
 * The one interface every backend implements: local directory, S3 (and GCS through its S3
 * interoperability API), Azure Blob. Every backend passes test/storage/conformance.ts.
 * Object names are '/'-separated relative paths such as "index/<hex>" or "data/ab/<hex>".
 * Objects are immutable: a name is written once; writers never modify, only create and delete.
 */
export interface Storage {
  /** Human-readable location for messages, e.g. "/srv/repo" or "s3://bucket/prefix". */
  readonly location: string;
  /**
   * Store an object atomically: readers see either nothing or the whole object. The content may
   * come in parts (a pack's blobs), which saves assembling one large buffer. Once the returned
   * promise settles, the backend no longer touches `data` (callers free it at once).
   */
  put(name: string, data: ObjectContent, options?: CallOptions): Promise<void>;
  /** Read a whole object, or `length` bytes from `offset`. Throws ObjectNotFoundError. */
  get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer>;
  /** Size of an object. Throws ObjectNotFoundError. */
  stat(name: string, options?: CallOptions): Promise<ObjectInfo>;
  /** Every object whose name starts with `prefix`, in no particular order. */
  list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo>;
  /** Remove an object; removing an absent object is not an error. */
  delete(name: string, options?: CallOptions): Promise<void>;
  /**
   * Optional: a local directory from which `putFile` moves a file into place without copying
   * (a local repository's own file system). Writers spool packs there; elsewhere, in a
   * temporary directory.
   */
  readonly spoolDir?: string | undefined;
  /**
   * Optional: store the local file `file` as object `name` atomically, taking the file (it is
   * gone afterwards, stored or not). storeFile() falls back to reading it and `put`.
   */
  readonly putFile?: ((name: string, file: string, options?: CallOptions) => Promise<void>) | undefined;
}

/**
 * What every storage call may take. An aborted `signal` ends the call promptly with
 * OperationCanceledError (a write may or may not have happened: objects are immutable and
 * named by their content, so either way the repository stays valid).
 */
export interface CallOptions {
  readonly signal?: AbortSignal | undefined;
}

/** Stores a local file as an object and removes the file: moved in place where the backend can. */
export async function storeFile(storage: Storage, name: string, file: string, options?: CallOptions): Promise<void> {
  if (storage.putFile) {
    await storage.putFile(name, file, options);
    return;
  }
  try {
    await storage.put(name, await fsp.readFile(file, { signal: options?.signal }), options);
  } finally {
    await fsp.rm(file, { force: true });
  }
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
  /**
   * When the object was last written, in ms since the epoch by the storage's own clock (the one
   * clock every host shares: lease ages are measured with it, docs/format.md §9). Backends fill
   * it in list and stat; wrappers pass it through.
   */
  readonly modified?: number | undefined;
}

export class ObjectNotFoundError extends ArcaError {
  readonly objectName: string;

  constructor(location: string, objectName: string) {
    super('ARCA_ERR_OBJECT_NOT_FOUND', `Object ${objectName} does not exist in ${location}.`);
    this.objectName = objectName;
  }
}

export interface StorageErrorOptions extends ErrorOptions {
  /** The same request may succeed if tried again (5xx, throttling, connection reset, timeout). */
  readonly transient?: boolean;
}

/** Any other failure of the storage itself (permissions, I/O, network after retries). */
export class StorageError extends ArcaError {
  /**
   * True when trying again may help: server errors, throttling, dropped connections, timeouts.
   * Backends make one attempt per call; a retrying wrapper decides from this flag.
   */
  readonly transient: boolean;

  constructor(location: string, action: string, options?: StorageErrorOptions) {
    // The cause's first line only: services append request IDs and timestamps on further lines.
    const cause = options?.cause instanceof Error ? `: ${(options.cause.message.split('\n')[0] ?? '').trim().replace(/\.$/, '')}` : '';
    super('ARCA_ERR_STORAGE', `Storage ${location} failed to ${action}${cause}.`, options);
    this.transient = options?.transient === true;
  }
}

/**
 * The storage service refused the credentials or the permission (HTTP 401/403). Never transient:
 * trying again with the same credentials cannot help.
 */
export class StorageAuthError extends ArcaError {
  readonly transient = false;

  /**
   * `detail` names what the service said (an error code or "HTTP 403"); `hint` names where the
   * credentials come from; `noCredentials` says that none were found at all.
   */
  constructor(location: string, detail: string, hint: string, options?: ErrorOptions & { readonly noCredentials?: boolean }) {
    super('ARCA_ERR_STORAGE_AUTH', options?.noCredentials === true
      ? `Storage ${location} needs credentials and none were found (${detail}); check the credentials (${hint}).`
      : `Storage ${location} refused access (${detail}); check the credentials (${hint}) and that they may list, read, write and delete objects there.`, options);
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
