import { canceledBy, sleepUnlessCanceled, throwIfCanceled } from '../errors.ts';
import { idOfName } from '../object-names.ts';
import {
  StorageError, type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage,
} from './storage.ts';

/**
 * Fractions in [0, 1] of requests that meet each fault. Every fault looks transient: what a
 * flaky network or an overloaded service does, never what a bug or real damage would.
 */
export interface FaultRates {
  /** Requests (and listings, at the start or midway) that fail with a connection reset. */
  readonly fail?: number;
  /** Puts that succeed in storage and then fail anyway: the answer was lost. */
  readonly lostPut?: number;
  /** Requests held back for up to `maxDelayMs` before they start. */
  readonly delay?: number;
  readonly maxDelayMs?: number;
  /** Requests that never answer (until the storage comes back); a timeout has to end them. */
  readonly hang?: number;
  /**
   * Gets whose body is cut short. Only gets a reader can check are cut: ranges (fewer bytes than
   * asked) and whole objects named by their hash. A real transport reports a body shorter than
   * its Content-Length itself, so `config` (no hash in its name) is never cut.
   */
  readonly truncate?: number;
}

export interface FaultCounts {
  failed: number;
  lostPuts: number;
  delayed: number;
  hung: number;
  truncated: number;
  /** Listings broken off after delivering some names. */
  brokenLists: number;
}

/** How the storage behaves while it is gone: every request hangs, or every request is refused. */
export type Outage = 'hang' | 'fail';

export interface FaultyOptions {
  /** Seeds the fault decisions; the same seed gives the same sequence of decisions. */
  readonly seed: number;
  readonly rates?: FaultRates;
}

/** A small, fast, seedable PRNG (mulberry32) returning numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A Storage wrapper for tests that injects faults: failed, delayed, hanging and truncated
 * requests, lost put answers, and a whole outage (`goAway`). Decisions come from a seeded
 * generator in the order requests arrive, so concurrent runs may draw them in another order.
 */
export class FaultyStorage implements Storage {
  readonly location: string;
  readonly injected: FaultCounts = { failed: 0, lostPuts: 0, delayed: 0, hung: 0, truncated: 0, brokenLists: 0 };
  private readonly inner: Storage;
  private readonly random: () => number;
  private rates: FaultRates;
  private outage: Outage | undefined = undefined;
  /** Requests left hanging, failed when the storage comes back. */
  private readonly hanging = new Set<(err: Error) => void>();

  constructor(inner: Storage, options: FaultyOptions) {
    this.inner = inner;
    this.location = inner.location;
    this.random = seededRandom(options.seed);
    this.rates = options.rates ?? {};
  }

  setRates(rates: FaultRates): void {
    this.rates = rates;
  }

  /** From now on every request hangs or is refused, including listings already under way. */
  goAway(mode: Outage): void {
    this.outage = mode;
  }

  /** Ends the outage; requests left hanging fail as dropped connections. */
  comeBack(): void {
    this.outage = undefined;
    for (const fail of this.hanging) fail(this.transientError('finish a request', 'ECONNRESET'));
    this.hanging.clear();
  }

  get gone(): boolean {
    return this.outage !== undefined;
  }

  async put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    await this.before(`write ${name}`, options?.signal);
    await this.inner.put(name, data, options);
    if (this.roll(this.rates.lostPut)) {
      this.injected.lostPuts++;
      throw this.transientError(`write ${name}`, 'ECONNRESET');
    }
  }

  async get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    await this.before(`read ${name}`, options?.signal);
    const bytes = await this.inner.get(name, range, options);
    const checkable = range !== undefined || idOfName(name) !== undefined;
    if (checkable && bytes.length > 0 && this.roll(this.rates.truncate)) {
      this.injected.truncated++;
      return bytes.subarray(0, Math.floor(this.random() * bytes.length));
    }
    return bytes;
  }

  async stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    await this.before(`look up ${name}`, options?.signal);
    return this.inner.stat(name, options);
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    await this.before(`delete ${name}`, options?.signal);
    await this.inner.delete(name, options);
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    const action = `list ${prefix}`;
    const signal = options?.signal;
    await this.before(action, signal);
    const breakAfter = this.roll(this.rates.fail) ? Math.floor(this.random() * 8) : -1;
    let delivered = 0;
    for await (const info of this.inner.list(prefix, options)) {
      if (this.outage !== undefined) await this.outageFault(action, signal);
      if (delivered === breakAfter) {
        this.injected.brokenLists++;
        throw this.transientError(action, 'ECONNRESET');
      }
      delivered++;
      yield info;
    }
  }

  /** The faults that strike before a request reaches the storage; `signal` ends a delay or a hang. */
  private async before(action: string, signal: AbortSignal | undefined): Promise<void> {
    throwIfCanceled(signal);
    if (this.outage !== undefined) await this.outageFault(action, signal);
    if (this.roll(this.rates.delay)) {
      this.injected.delayed++;
      await sleepUnlessCanceled(Math.floor(this.random() * (this.rates.maxDelayMs ?? 100)), signal);
    }
    if (this.roll(this.rates.hang)) {
      this.injected.hung++;
      await this.hang(signal);
    }
    if (this.roll(this.rates.fail)) {
      this.injected.failed++;
      throw this.transientError(action, 'ECONNRESET');
    }
  }

  private async outageFault(action: string, signal: AbortSignal | undefined): Promise<never> {
    if (this.outage === 'hang') return this.hang(signal);
    throw this.transientError(action, 'ECONNREFUSED');
  }

  /** Never answers until the storage comes back or `signal` fires. */
  private hang(signal: AbortSignal | undefined): Promise<never> {
    return new Promise<never>((_resolve, reject) => {
      const fail = (err: Error): void => {
        this.hanging.delete(fail);
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      const onAbort = (): void => { fail(canceledBy(signal)); };
      this.hanging.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }


  private roll(rate: number | undefined): boolean {
    return rate !== undefined && rate > 0 && this.random() < rate;
  }

  private transientError(action: string, code: 'ECONNRESET' | 'ECONNREFUSED'): StorageError {
    const cause = Object.assign(new Error(code === 'ECONNRESET' ? 'connection reset by peer (injected fault)' : 'connection refused (injected fault)'), { code });
    return new StorageError(this.location, action, { cause, transient: true });
  }
}
