/**
 * Typed errors of the repository layer. Callers branch on `code`; users read `message`,
 * which always says what happened and, where there is one, what to do about it.
 */
export class ArcaError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** No repository (no config object) at the given location. */
export class RepositoryNotFoundError extends ArcaError {
  constructor(location: string) {
    super('ARCA_ERR_REPO_NOT_FOUND', `There is no Arca repository at ${location}.`);
  }
}

export class RepositoryExistsError extends ArcaError {
  constructor(location: string) {
    super('ARCA_ERR_REPO_EXISTS', `An Arca repository already exists at ${location}; refusing to overwrite it.`);
  }
}

/** No key file could be opened with the given password. */
export class WrongPasswordError extends ArcaError {
  constructor() {
    super('ARCA_ERR_WRONG_PASSWORD', 'The password does not open any key of this repository.');
  }
}

/** A stored object failed authentication, hashing or parsing: it was damaged or tampered with. */
export class CorruptObjectError extends ArcaError {
  readonly objectName: string;

  constructor(objectName: string, detail: string, options?: ErrorOptions) {
    super('ARCA_ERR_CORRUPT', `Stored object ${objectName} is corrupt (${detail}); run "arca check" to see what is affected.`, options);
    this.objectName = objectName;
  }
}

/** A blob the caller needs is in no index. */
export class BlobNotFoundError extends ArcaError {
  constructor(blobId: string) {
    super('ARCA_ERR_BLOB_MISSING', `Blob ${blobId} is not in any index of the repository; run "arca check".`);
  }
}

export class SnapshotNotFoundError extends ArcaError {
  constructor(ref: string, detail = 'no snapshot matches') {
    super('ARCA_ERR_SNAPSHOT_NOT_FOUND', `Snapshot "${ref}": ${detail}.`);
  }
}

/**
 * The caller cancelled the operation (its AbortSignal fired). Not a failure: what was stored
 * stays valid and is reused by the next run; nothing half-done was recorded.
 */
export class OperationCanceledError extends ArcaError {
  constructor(options?: ErrorOptions) {
    super('ARCA_ERR_CANCELED', 'The operation was canceled.', options);
  }
}

/** Throws OperationCanceledError if `signal` has fired. */
export function throwIfCanceled(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw canceledBy(signal);
}

/** The error a cancelled call ends with: the signal's reason if it is one, else a new one. */
export function canceledBy(signal: AbortSignal | undefined): OperationCanceledError {
  const reason: unknown = signal?.reason;
  return reason instanceof OperationCanceledError ? reason : new OperationCanceledError({ cause: reason });
}

/**
 * Waits `ms`, or ends early with OperationCanceledError when `signal` fires. On the global
 * setTimeout (not node:timers/promises), so tests that fake the clock drive it.
 */
export function sleepUnlessCanceled(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(canceledBy(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The user asked for something that cannot be done as asked (bad option, bad argument). */
export class UsageError extends ArcaError {
  constructor(message: string) {
    super('ARCA_ERR_USAGE', message);
  }
}
