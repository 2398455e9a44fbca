import { blake3 } from '@napi-rs/blake-hash';
import { ArcaError, canceledBy, OperationCanceledError, sleepUnlessCanceled } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { idOfName } from '../object-names.ts';
import { isTransientNetworkError, type RequestTimeouts } from './remote.ts';
import {
  ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError,
  type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage,
} from './storage.ts';

/**
 * How hard a RetryingStorage tries. "Without progress" means: for a get, put, stat or delete,
 * since the call began; for a list, since the last new name arrived (a long listing that keeps
 * delivering is never cut off).
 */
export interface RetryPolicy {
  /** Further attempts after a transient failure (connection reset, timeout, 5xx, throttling). */
  readonly retries: number;
  /** Backoff before retry n (0-based) is uniform in [0, min(maxDelayMs, baseDelayMs * 2^n)] ("full jitter"). */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** One attempt that has not answered after this long is abandoned and counts as a transient failure. */
  readonly requestTimeoutMs: number;
  /** An operation without progress for this long fails with StorageUnavailableError. */
  readonly deadlineMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 8,
  baseDelayMs: 250,
  maxDelayMs: 15_000,
  requestTimeoutMs: 65_000,
  deadlineMs: 120_000,
};

/**
 * A truncated body (ShortReadError on a range, or a whole content-named object whose bytes do not
 * hash to its name) is retried at once, this many times: it is a transport hiccup, not an
 * overloaded server. Past that the object itself is most likely short or damaged. Four: a proxy
 * that cuts one body in ten (the end-to-end tests' rate) still cut three in a row once in a
 * thousand reads, and a restore makes thousands.
 */
export const CONTENT_RETRIES = 4;

export type StorageOperation = 'get' | 'put' | 'stat' | 'list' | 'delete';

export interface RetryEvent {
  readonly operation: StorageOperation;
  /** The object name, or the prefix of a list. */
  readonly name: string;
  /** 1 for the first attempt that failed. */
  readonly attempt: number;
  /** Wait before the next attempt. */
  readonly delayMs: number;
  readonly error: Error;
}

export interface RetryingOptions extends Partial<RetryPolicy> {
  /** Every retry is logged as a warning (with the repository's location and the object). */
  readonly logger?: Logger;
  /** Told before every retry (tests count them). */
  readonly onRetry?: (event: RetryEvent) => void;
  /** Source of jitter in [0, 1); tests pass a fixed or seeded one. */
  readonly random?: () => number;
}

/** The storage did not answer usefully within the deadline, or failed transiently too often in a row. */
export class StorageUnavailableError extends ArcaError {
  readonly attempts: number;
  readonly elapsedMs: number;

  constructor(location: string, action: string, detail: { attempts: number; elapsedMs: number; reason: 'deadline' | 'attempts'; lastError: Error }) {
    const last = detail.lastError.message.replace(/\.$/, '');
    const what = detail.reason === 'deadline'
      ? `did not answer for ${seconds(detail.elapsedMs)} s`
      : `failed ${detail.attempts} times in a row`;
    super('ARCA_ERR_STORAGE_UNAVAILABLE', `Storage ${location} ${what} while trying to ${action} (last error: ${last}); check the network and the endpoint.`, { cause: detail.lastError });
    this.attempts = detail.attempts;
    this.elapsedMs = detail.elapsedMs;
  }
}

/** One attempt ran past the per-request limit; it is abandoned (its late answer is ignored). */
export class StorageTimeoutError extends ArcaError {
  constructor(location: string, action: string, ms: number) {
    super('ARCA_ERR_STORAGE_TIMEOUT', `Storage ${location} did not answer within ${seconds(ms)} s to ${action}.`);
  }
}

/** The whole object's bytes do not hash to its name: the whole-object form of a short read. */
class ContentMismatchError extends ArcaError {
  constructor(location: string, name: string, got: number) {
    super('ARCA_ERR_CONTENT_MISMATCH', `Object ${name} in ${location} arrived damaged or cut short (${got} bytes that do not hash to its name).`);
  }
}

/**
 * permanent: report at once (not found, refused credentials, a local I/O error, a bug);
 * transient: back off and try again; content: the answer came but was cut short, try again at once.
 */
export type FailureKind = 'permanent' | 'transient' | 'content';

export function failureKind(err: unknown): FailureKind {
  if (err instanceof OperationCanceledError) return 'permanent';
  if (err instanceof ObjectNotFoundError || err instanceof StorageAuthError) return 'permanent';
  if (err instanceof ShortReadError || err instanceof ContentMismatchError) return 'content';
  if (err instanceof StorageTimeoutError) return 'transient';
  if (err instanceof StorageError) return err.transient || isTransientNetworkError(err.cause) ? 'transient' : 'permanent';
  if (err instanceof ArcaError) return 'permanent';
  return isTransientNetworkError(err) ? 'transient' : 'permanent';
}

/** The retry policy that fits the backends' request time limits: a little above them, so theirs fire first and name the request. */
export function retryPolicyFor(timeouts: RequestTimeouts): RetryPolicy {
  const requestTimeoutMs = timeouts.dataMs + 5_000;
  return { ...DEFAULT_RETRY_POLICY, requestTimeoutMs, deadlineMs: Math.max(DEFAULT_RETRY_POLICY.deadlineMs, 2 * requestTimeoutMs) };
}

/**
 * Wraps any backend with retries: exponential backoff with full jitter on transient failures,
 * a per-request timeout, and a deadline after which an operation fails with
 * StorageUnavailableError, so a command whose storage is gone ends within a bounded time.
 *
 * Every operation is safe to repeat: objects are immutable and named by their content, so a put
 * whose answer was lost writes the same bytes again; deletes are idempotent. A list that fails
 * midway is restarted from the beginning and names already delivered are skipped (the Storage
 * interface has no way to resume from a name); this keeps one set of the delivered names.
 *
 * Gets are checked: a range that comes back short, or a whole object named by its hash whose
 * bytes do not match the name, is fetched again (CONTENT_RETRIES times at most). When a whole object still does
 * not match, its bytes are returned so the caller's own check reports the damage.
 */
export class RetryingStorage implements Storage {
  readonly location: string;
  readonly policy: RetryPolicy;
  private readonly inner: Storage;
  private readonly logger: Logger;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  private readonly random: () => number;

  constructor(inner: Storage, options: RetryingOptions = {}) {
    this.inner = inner;
    this.location = inner.location;
    this.policy = {
      retries: options.retries ?? DEFAULT_RETRY_POLICY.retries,
      baseDelayMs: options.baseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_RETRY_POLICY.requestTimeoutMs,
      deadlineMs: options.deadlineMs ?? DEFAULT_RETRY_POLICY.deadlineMs,
    };
    this.logger = (options.logger ?? silentLogger).child({ repository: inner.location });
    this.onRetry = options.onRetry;
    this.random = options.random ?? Math.random;
  }

  put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    return this.run('put', name, `write ${name}`, options?.signal, () => this.inner.put(name, data, options));
  }

  get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    if (range !== undefined) {
      return this.run('get', name, `read ${name}`, options?.signal, async () => {
        const bytes = await this.inner.get(name, range, options);
        if (bytes.length < range.length) throw new ShortReadError(this.location, name, range, bytes.length);
        return bytes;
      });
    }
    const id = idOfName(name);
    return this.run('get', name, `read ${name}`, options?.signal, () => this.inner.get(name, undefined, options),
      id === undefined ? undefined : (bytes) => blake3(bytes).toString('hex') === id ? undefined : new ContentMismatchError(this.location, name, bytes.length));
  }

  stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    return this.run('stat', name, `look up ${name}`, options?.signal, () => this.inner.stat(name, options));
  }

  delete(name: string, options?: CallOptions): Promise<void> {
    return this.run('delete', name, `delete ${name}`, options?.signal, () => this.inner.delete(name, options));
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    const action = `list ${prefix === '' ? '/' : prefix}`;
    const signal = options?.signal;
    const delivered = new Set<string>();
    let tracker = new Attempts(this.policy);
    for (;;) {
      const iterator = this.inner.list(prefix, options)[Symbol.asyncIterator]();
      try {
        for (;;) {
          let next: IteratorResult<ObjectInfo>;
          try {
            next = await this.attempt(() => iterator.next(), tracker, action, signal);
          } catch (err) {
            const delay = this.afterFailure(err, tracker, 'list', prefix, action, signal);
            if (delay > 0) await sleepUnlessCanceled(delay, signal);
            break; // Start the listing again.
          }
          if (next.done === true) return;
          if (delivered.has(next.value.name)) continue;
          delivered.add(next.value.name);
          yield next.value;
          tracker = new Attempts(this.policy); // New names are progress: the clock and the count start again.
        }
      } finally {
        // Close the abandoned (or finished) listing; its own failure no longer matters.
        iterator.return?.().catch(() => undefined);
      }
    }
  }

  /** Runs one operation to success, a permanent failure, or unavailability. */
  private async run<T>(
    operation: StorageOperation, name: string, action: string, signal: AbortSignal | undefined, call: () => Promise<T>, verify?: (value: T) => Error | undefined,
  ): Promise<T> {
    const tracker = new Attempts(this.policy);
    for (;;) {
      let value: T;
      try {
        value = await this.attempt(call, tracker, action, signal);
      } catch (err) {
        const delay = this.afterFailure(err, tracker, operation, name, action, signal);
        if (delay > 0) await sleepUnlessCanceled(delay, signal);
        continue;
      }
      const problem = verify?.(value);
      if (problem === undefined) return value;
      if (tracker.content >= CONTENT_RETRIES) return value; // Damaged in storage, most likely: the caller reports it.
      this.afterFailure(problem, tracker, operation, name, action, signal);
    }
  }

  /** Waits for one attempt, at most the request timeout and what is left of the deadline, and not past `signal`. */
  private async attempt<T>(start: () => Promise<T>, tracker: Attempts, action: string, signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted === true) throw canceledBy(signal);
    const remaining = tracker.remainingMs();
    if (remaining <= 0) throw tracker.unavailable(this.location, action, 'deadline');
    const pending = start();
    const limit = Math.min(this.policy.requestTimeoutMs, remaining);
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new StorageTimeoutError(this.location, action, limit));
      }, limit);
      const onAbort = (): void => {
        cleanup();
        reject(canceledBy(signal));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (value) => { cleanup(); resolve(value); },
        (err: unknown) => { cleanup(); reject(err instanceof Error ? err : new Error(String(err))); },
      );
    });
  }

  /**
   * Decides what a failed attempt means: rethrows it when it is permanent or retries are used up,
   * otherwise reports the retry and returns how long to wait before the next attempt.
   */
  private afterFailure(err: unknown, tracker: Attempts, operation: StorageOperation, name: string, action: string, signal: AbortSignal | undefined): number {
    if (signal?.aborted === true) throw canceledBy(signal);
    const error = err instanceof Error ? err : new Error(String(err));
    const kind = failureKind(error);
    if (kind === 'permanent') throw error;
    tracker.lastError = error;
    let delay = 0;
    if (kind === 'content') {
      if (tracker.content >= CONTENT_RETRIES) throw error;
      tracker.content++;
    } else {
      if (tracker.transient >= this.policy.retries) throw tracker.unavailable(this.location, action, 'attempts');
      const ceiling = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** tracker.transient);
      delay = Math.floor(this.random() * ceiling);
      tracker.transient++;
      // Waiting past the deadline would only postpone the same verdict.
      if (delay >= tracker.remainingMs()) throw tracker.unavailable(this.location, action, 'deadline');
    }
    const attempt = tracker.transient + tracker.content;
    this.onRetry?.({ operation, name, attempt, delayMs: delay, error });
    this.logger.warn({ operation, object: name, attempt, delayMs: delay },
      `${error.message.replace(/\.$/, '')}; trying again${delay > 0 ? ` in ${(delay / 1000).toFixed(1)} s` : ''}`);
    return delay;
  }

}

/** The failures and the clock of one operation (or of one stretch of a listing). */
class Attempts {
  transient = 0;
  content = 0;
  lastError: Error | undefined = undefined;
  private readonly started = performance.now();
  private readonly policy: RetryPolicy;

  constructor(policy: RetryPolicy) {
    this.policy = policy;
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  remainingMs(): number {
    return this.policy.deadlineMs - this.elapsedMs();
  }

  unavailable(location: string, action: string, reason: 'deadline' | 'attempts'): StorageUnavailableError {
    const lastError = this.lastError ?? new Error('no answer');
    return new StorageUnavailableError(location, action, {
      attempts: this.transient + this.content + 1,
      elapsedMs: reason === 'deadline' ? Math.max(this.elapsedMs(), this.policy.deadlineMs) : this.elapsedMs(),
      reason,
      lastError,
    });
  }
}

function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(1)));
}
