/**
 * What the network backends (S3, Azure) share: per-request timeouts, which failures are worth
 * another try, and cutting an object's content into upload parts without copying it.
 */
import { Readable } from 'node:stream';
import { ArcaError, canceledBy, throwIfCanceled, UsageError } from '../errors.ts';
import { StorageError } from './storage.ts';

export interface RequestTimeouts {
  /** Limit for one request that carries object bytes (a put, a get, one upload part). */
  readonly dataMs: number;
  /** Limit for one request without a body worth mentioning (stat, one list page, delete). */
  readonly metadataMs: number;
}

export const DEFAULT_TIMEOUTS: RequestTimeouts = { dataMs: 60_000, metadataMs: 30_000 };

/** Timeouts for a data limit of `seconds`; metadata requests get at most 30 s of it. */
export function timeoutsOf(seconds: number): RequestTimeouts {
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`A storage request time limit must be a positive number of seconds, not ${seconds}.`);
  const dataMs = Math.round(seconds * 1000);
  return { dataMs, metadataMs: Math.min(dataMs, DEFAULT_TIMEOUTS.metadataMs) };
}

/** A request ran past its time limit and was aborted. */
export class RequestTimeoutError extends Error {
  readonly ms: number;

  constructor(ms: number, options?: ErrorOptions) {
    super(`no answer within ${ms / 1000} s`, options);
    this.name = 'RequestTimeoutError';
    this.ms = ms;
  }
}

/**
 * Runs one request with an AbortSignal that fires after `ms` or when `cancel` does; whatever the
 * request then throws becomes a RequestTimeoutError or an OperationCanceledError, so callers see
 * one kind of timeout and of cancellation from every SDK.
 */
export async function withTimeout<T>(ms: number, run: (signal: AbortSignal) => Promise<T>, cancel?: AbortSignal): Promise<T> {
  throwIfCanceled(cancel);
  const controller = new AbortController();
  const timer = setTimeout(() => { controller.abort(new RequestTimeoutError(ms)); }, ms);
  const onCancel = (): void => { controller.abort(canceledBy(cancel)); };
  cancel?.addEventListener('abort', onCancel, { once: true });
  try {
    return await run(controller.signal);
  } catch (err) {
    if (cancel?.aborted === true) throw canceledBy(cancel);
    if (controller.signal.aborted) throw new RequestTimeoutError(ms, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
    cancel?.removeEventListener('abort', onCancel);
  }
}

const TRANSIENT_NET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE',
]);

/** A dropped or refused connection, anywhere in the error's cause chain. */
export function isTransientNetworkError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && TRANSIENT_NET_CODES.has(code)) return true;
    if (e.message === 'aborted' || e.message === 'socket hang up' || e.name === 'TimeoutError') return true;
  }
  return false;
}

/**
 * The gist of an SDK error for `cause`: name, first line of the message, the service's error code
 * and HTTP status. SDK errors carry whole request and response objects, which would otherwise be
 * dumped into logs and test reports.
 */
export function compactCause(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  const shape = err as { Code?: unknown; code?: unknown; statusCode?: unknown; $metadata?: { httpStatusCode?: unknown }; $response?: unknown; response?: unknown; request?: unknown };
  if (shape.$response === undefined && shape.$metadata === undefined && shape.response === undefined && shape.request === undefined) return err;
  const compact = new Error((err.message.split('\n')[0] ?? '').trim(), err.cause === undefined ? undefined : { cause: compactCause(err.cause) });
  compact.name = err.name;
  compact.stack = err.stack;
  const code = shape.Code ?? shape.code;
  const status = shape.$metadata?.httpStatusCode ?? shape.statusCode;
  if (typeof code === 'string') Object.assign(compact, { code });
  if (typeof status === 'number') Object.assign(compact, { status });
  return compact;
}

/** HTTP statuses worth another try: timeouts, throttling and server errors. */
export function isTransientStatus(status: number | undefined): boolean {
  return status !== undefined && (status === 408 || status === 429 || status >= 500);
}

export function contentLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

/**
 * One contiguous copy of the parts, always a copy: an attempt abandoned after its time limit may
 * still be sending when put() has settled through a later attempt, and by then the caller may
 * have freed its own buffers (see Storage.put).
 */
export function joinParts(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/**
 * Cuts content given in parts into consecutive pieces of `pieceSize` bytes (the last may be
 * shorter), each as a list of views into the original parts: nothing is copied here.
 */
export function splitParts(parts: readonly Uint8Array[], pieceSize: number): Uint8Array[][] {
  const pieces: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let room = pieceSize;
  for (const part of parts) {
    let at = 0;
    while (at < part.byteLength) {
      const take = Math.min(room, part.byteLength - at);
      current.push(part.subarray(at, at + take));
      at += take;
      room -= take;
      if (room === 0) {
        pieces.push(current);
        current = [];
        room = pieceSize;
      }
    }
  }
  if (current.length > 0) pieces.push(current);
  return pieces;
}

/**
 * Runs `task` over `items` with at most `limit` running at once. After a failure no new task
 * starts; it returns once the running ones have settled and throws the first failure.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { readonly err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        await task(items[index] as T, index);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.err;
}

/** "a/b/" from " /a//b/ ": the key prefix under which a repository's objects live. */
export function normalizePrefix(raw: string): string {
  const segments = raw.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw new UsageError(`The repository path "${raw}" must not contain "." or ".." segments.`);
  return segments.length === 0 ? '' : `${segments.join('/')}/`;
}

/**
 * Reads a response body to the end. The signal also stops the body: an SDK's own abort handling
 * may end with the response headers, and a stalled body must not outlive the request's limit.
 */
export async function readBody(body: NodeJS.ReadableStream, signal: AbortSignal): Promise<Buffer> {
  const stream = body instanceof Readable ? body : Readable.from(body);
  const onAbort = (): void => { stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted')); };
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of stream) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer;
      chunks.push(buf);
      length += buf.length;
    }
    return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, length);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** One attempt of one request within `ms`, until `cancel` fires; whatever it throws goes through `mapError`. */
export async function attemptOnce<T>(ms: number, run: (signal: AbortSignal) => Promise<T>, mapError: (err: unknown) => Error, cancel?: AbortSignal): Promise<T> {
  try {
    return await withTimeout(ms, run, cancel);
  } catch (err) {
    throw mapError(err);
  }
}

/** The failures every backend maps alike: our own typed errors, and timeouts (transient). */
export function alreadyTyped(err: unknown, location: string, action: string): Error | undefined {
  if (err instanceof ArcaError) return err;
  if (err instanceof RequestTimeoutError) return new StorageError(location, action, { cause: compactCause(err), transient: true });
  return undefined;
}
