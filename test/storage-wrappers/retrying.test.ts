import { blake3 } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FaultyStorage } from '../../repository/storage/faulty.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import {
  CONTENT_RETRIES, failureKind, RetryingStorage, StorageUnavailableError, type RetryEvent, type RetryingOptions,
} from '../../repository/storage/retrying.ts';
import {
  ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError, type Storage,
} from '../../repository/storage/storage.ts';
import { tempDir } from '../support/cli.ts';
import { pseudoRandom } from './helpers.ts';

/** Fast settings: the behaviour is the same as the defaults', only the clock is shorter. */
const FAST: RetryingOptions = { retries: 5, baseDelayMs: 10, maxDelayMs: 80, requestTimeoutMs: 300, deadlineMs: 2_000 };

const named = (bytes: Buffer): string => `index/${blake3(bytes).toString('hex')}`;

/**
 * Test-controlled time for the retry logic's clock and timers, so that "within the deadline" and
 * "at once" are exact statements about that clock rather than races against the machine's.
 */
function useFakeClock(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
}

/** Where a promise stands, readable synchronously: 'pending', or what it settled with. */
function watch(promise: Promise<unknown>): () => unknown {
  let state: unknown = 'pending';
  promise.then((value) => { state = { value }; }, (err: unknown) => { state = err; });
  return () => state;
}

describe('RetryingStorage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let local: LocalStorage;
  let faulty: FaultyStorage;
  let retries: RetryEvent[];

  function retrying(options: RetryingOptions = {}): RetryingStorage {
    return new RetryingStorage(faulty, { ...FAST, onRetry: (e) => retries.push(e), ...options });
  }

  /** Fails requests with `rates` until `n` retries have happened, then lets everything through. */
  function faultsFor(n: number): RetryingOptions['onRetry'] {
    return (e) => {
      retries.push(e);
      if (retries.length >= n) faulty.setRates({});
    };
  }

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('arca-retry-'));
    local = new LocalStorage(dir);
    faulty = new FaultyStorage(local, { seed: 1 });
    retries = [];
  });
  afterEach(async () => {
    vi.useRealTimers();
    faulty.comeBack();
    await cleanup();
  });

  it('retries transient failures of every operation and then succeeds', async () => {
    const bytes = pseudoRandom('a', 5000);
    const name = named(bytes);
    faulty.setRates({ fail: 1 });
    const storage = retrying({ onRetry: faultsFor(3) });
    await storage.put(name, bytes);
    expect(retries).toHaveLength(3);
    expect(retries.every((e) => e.operation === 'put' && e.name === name)).toBe(true);
    expect(retries.map((e) => e.attempt)).toEqual([1, 2, 3]);
    const ops: Array<(s: Storage) => Promise<unknown>> = [(s) => s.get(name), (s) => s.stat(name), (s) => s.get(name, { offset: 10, length: 100 }), (s) => s.delete('index/none')];
    for (const op of ops) {
      retries = [];
      faulty.setRates({ fail: 1 });
      await op(retrying({ onRetry: faultsFor(2) }));
      expect(retries).toHaveLength(2);
    }
    expect(await storage.get(name)).toEqual(bytes);
    expect(faulty.injected.failed).toBeGreaterThanOrEqual(3);
  });

  it('backs off exponentially with full jitter, capped at maxDelayMs', async () => {
    faulty.setRates({ fail: 1 });
    const delays: number[] = [];
    const storage = new RetryingStorage(faulty, {
      retries: 6, baseDelayMs: 5, maxDelayMs: 40, requestTimeoutMs: 1000, deadlineMs: 10_000,
      random: () => 0.999,
      onRetry: (e) => { delays.push(e.delayMs); },
    });
    await expect(storage.stat('config')).rejects.toBeInstanceOf(StorageUnavailableError);
    // Ceilings 5, 10, 20, 40, 40, 40: the jitter (almost 1 here) scales each.
    expect(delays).toEqual([4, 9, 19, 39, 39, 39]);
    const jittered: number[] = [];
    const seeded = new RetryingStorage(faulty, {
      retries: 6, baseDelayMs: 5, maxDelayMs: 40, requestTimeoutMs: 1000, deadlineMs: 10_000,
      onRetry: (e) => { jittered.push(e.delayMs); },
    });
    await expect(seeded.stat('config')).rejects.toBeInstanceOf(StorageUnavailableError);
    jittered.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(40, 5 * 2 ** i));
    });
  });

  it('fails after `retries` transient failures with StorageUnavailableError naming the storage and the last error', async () => {
    faulty.goAway('fail');
    const err = await retrying({ retries: 3 }).get('config').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageUnavailableError);
    const message = (err as Error).message;
    expect(message).toContain(`Storage ${dir} failed 4 times in a row while trying to read config`);
    expect(message).toContain('connection refused');
    expect(message).toMatch(/check the network and the endpoint\.$/);
    expect(retries).toHaveLength(3);
  });

  it('times out hanging requests and retries them', async () => {
    const bytes = pseudoRandom('b', 300);
    await local.put(named(bytes), bytes);
    faulty.setRates({ hang: 1 });
    const started = performance.now();
    const got = await retrying({ requestTimeoutMs: 100, onRetry: faultsFor(2) }).get(named(bytes));
    expect(got).toEqual(bytes);
    expect(retries.map((e) => e.error.message)).toEqual([expect.stringContaining('did not answer within 0.1 s'), expect.stringContaining('did not answer within 0.1 s')]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('fails within the deadline when the storage hangs, whatever the retry count', async () => {
    useFakeClock();
    faulty.goAway('hang');
    const storage = retrying({ retries: 100, requestTimeoutMs: 300, deadlineMs: 1_000, random: () => 0 });
    const outcome = watch(storage.stat('config'));
    await vi.advanceTimersByTimeAsync(999);
    expect(outcome()).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    const err = outcome();
    expect(err).toBeInstanceOf(StorageUnavailableError);
    expect((err as Error).message).toMatch(new RegExp(`^Storage ${dir} did not answer for 1 s while trying to look up config \\(last error: .*did not answer within .*\\); check the network and the endpoint\\.$`));
    // Three attempts of 300 ms, and a fourth cut to the 100 ms left: not the hundred retries allowed.
    expect(retries).toHaveLength(3);
  });

  it('never retries a missing object or refused credentials', async () => {
    const storage = retrying();
    await expect(storage.get('index/0000000000000000000000000000000000000000000000000000000000000000')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.stat('config')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.get('config', { offset: 0, length: 5 })).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(retries).toEqual([]);
    let calls = 0;
    const refusing: Storage = {
      location: 's3://bucket/prefix',
      put: () => Promise.reject(new StorageAuthError('s3://bucket/prefix', 'HTTP 403', 'AWS_ACCESS_KEY_ID')),
      get: () => { calls++; return Promise.reject(new StorageAuthError('s3://bucket/prefix', 'HTTP 403', 'AWS_ACCESS_KEY_ID')); },
      stat: () => { calls++; return Promise.reject(new StorageError('s3://bucket/prefix', 'look up config', { cause: new Error('disk full') })); },
      list: () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('a bug')) }) }),
      delete: () => Promise.resolve(),
    };
    const wrapped = new RetryingStorage(refusing, { ...FAST, onRetry: (e) => retries.push(e) });
    await expect(wrapped.get('config')).rejects.toBeInstanceOf(StorageAuthError);
    await expect(wrapped.stat('config')).rejects.toThrow(/disk full/);
    await expect(collect(wrapped.list(''))).rejects.toThrow('a bug');
    expect(calls).toBe(2);
    expect(retries).toEqual([]);
  });

  it('classifies failures: transient flags and network codes retry, the rest do not', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(failureKind(new StorageError('x', 'read a', { transient: true }))).toBe('transient');
    expect(failureKind(new StorageError('x', 'read a', { cause: reset }))).toBe('transient');
    expect(failureKind(reset)).toBe('transient');
    expect(failureKind(new StorageError('x', 'read a', { cause: Object.assign(new Error('no'), { code: 'EACCES' }) }))).toBe('permanent');
    expect(failureKind(new ShortReadError('x', 'a', { offset: 0, length: 9 }, 3))).toBe('content');
    expect(failureKind(new ObjectNotFoundError('x', 'a'))).toBe('permanent');
    expect(failureKind(new StorageAuthError('x', 'HTTP 401', 'keys'))).toBe('permanent');
    expect(failureKind(new TypeError('bug'))).toBe('permanent');
  });

  it('fetches a cut range again, and reports ShortReadError when it stays short', async () => {
    const bytes = pseudoRandom('c', 10_000);
    const name = 'data/ab/abcdef';
    await local.put(name, bytes);
    faulty.setRates({ truncate: 1 });
    expect(await retrying({ onRetry: faultsFor(1) }).get(name, { offset: 100, length: 5000 })).toEqual(bytes.subarray(100, 5100));
    expect(retries[0]?.delayMs).toBe(0); // A cut body is retried at once.
    faulty.setRates({ truncate: 1 });
    retries = [];
    await expect(retrying().get(name, { offset: 100, length: 5000 })).rejects.toBeInstanceOf(ShortReadError);
    expect(retries).toHaveLength(CONTENT_RETRIES);
    // A range past the end of the object is reported, not waited on.
    faulty.setRates({});
    retries = [];
    await expect(retrying().get(name, { offset: 9000, length: 5000 })).rejects.toBeInstanceOf(ShortReadError);
  });

  it('fetches a whole object again when its bytes do not hash to its name, and hands them over if they never do', async () => {
    const bytes = pseudoRandom('d', 4000);
    const name = named(bytes);
    await local.put(name, bytes);
    faulty.setRates({ truncate: 1 });
    expect(await retrying({ onRetry: faultsFor(1) }).get(name)).toEqual(bytes);
    // Damaged in storage: after CONTENT_RETRIES more tries the bytes go to the caller, whose hash check reports it.
    const damaged = Buffer.from(bytes);
    damaged[7] = (damaged[7] ?? 0) ^ 1;
    await local.put(name, damaged);
    retries = [];
    expect(await retrying().get(name)).toEqual(damaged);
    expect(retries).toHaveLength(CONTENT_RETRIES);
    // Objects not named by their hash (config, leases) are not checked.
    await local.put('config', damaged);
    retries = [];
    expect(await retrying().get('config')).toEqual(damaged);
    expect(retries).toEqual([]);
  });

  it('writes again when the answer to a put was lost', async () => {
    const bytes = pseudoRandom('e', 70_000);
    const name = `data/${blake3(bytes).toString('hex').slice(0, 2)}/${blake3(bytes).toString('hex')}`;
    faulty.setRates({ lostPut: 1 });
    await retrying({ onRetry: faultsFor(2) }).put(name, [bytes.subarray(0, 1000), bytes.subarray(1000)]);
    expect(faulty.injected.lostPuts).toBe(2);
    expect(await local.get(name)).toEqual(bytes);
    expect((await local.stat(name)).size).toBe(bytes.length);
  });

  it('restarts a listing that breaks off and delivers every name exactly once', async () => {
    const names: string[] = [];
    for (let i = 0; i < 40; i++) {
      const bytes = pseudoRandom(`l${i}`, 10);
      names.push(named(bytes));
      await local.put(named(bytes), bytes);
    }
    faulty.setRates({ fail: 0.3 });
    const storage = retrying({ retries: 50 });
    for (let round = 0; round < 5; round++) {
      expect((await collect(storage.list('index/'))).sort()).toEqual([...names].sort());
    }
    expect(faulty.injected.brokenLists + faulty.injected.failed).toBeGreaterThan(0);
    expect(retries.every((e) => e.operation === 'list' && e.name === 'index/')).toBe(true);
  });

  it('gives up a listing that keeps failing without delivering anything new', async () => {
    const bytes = pseudoRandom('x', 10);
    await local.put(named(bytes), bytes);
    faulty.goAway('fail');
    const storage = retrying({ retries: 2 });
    await expect(collect(storage.list('index/'))).rejects.toBeInstanceOf(StorageUnavailableError);
  });

  it('stops at once when the signal aborts, during a backoff or a hanging request', async () => {
    useFakeClock();
    faulty.goAway('fail');
    const controller = new AbortController();
    const storage = retrying({ baseDelayMs: 5_000, maxDelayMs: 5_000, random: () => 0.9, signal: controller.signal, deadlineMs: 60_000 });
    const backingOff = watch(storage.stat('config'));
    await vi.advanceTimersByTimeAsync(100);
    expect(retries).toHaveLength(1); // waiting 4.5 s before the second attempt
    controller.abort(new Error('cancelled by the test'));
    await vi.advanceTimersByTimeAsync(0); // no time passes
    expect(backingOff()).toEqual(new Error('cancelled by the test'));

    faulty.goAway('hang');
    const again = new AbortController();
    const hanging = watch(retrying({ signal: again.signal, requestTimeoutMs: 60_000, deadlineMs: 60_000 }).get('config'));
    await vi.advanceTimersByTimeAsync(100);
    expect(hanging()).toBe('pending');
    again.abort(new Error('cancelled again'));
    await vi.advanceTimersByTimeAsync(0);
    expect(hanging()).toEqual(new Error('cancelled again'));
  });
});

describe('FaultyStorage', () => {
  it('injects only faults that the retrying wrapper treats as transient, at roughly the asked rates', async () => {
    const { dir, cleanup } = await tempDir('arca-faulty-');
    try {
      const local = new LocalStorage(dir);
      const faulty = new FaultyStorage(local, { seed: 42, rates: { fail: 0.1, lostPut: 0.05, delay: 0.1, maxDelayMs: 5, truncate: 0.1 } });
      let failures = 0;
      for (let i = 0; i < 300; i++) {
        const bytes = pseudoRandom(`f${i}`, 64);
        try {
          await faulty.put(named(bytes), bytes);
          const got = await faulty.get(named(bytes));
          if (got.length < bytes.length) expect(failureKind(new ShortReadError(dir, named(bytes), { offset: 0, length: 64 }, got.length))).toBe('content');
        } catch (err) {
          failures++;
          expect(failureKind(err)).toBe('transient');
        }
      }
      expect(failures).toBeGreaterThan(30);
      expect(failures).toBeLessThan(110);
      expect(faulty.injected.truncated).toBeGreaterThan(10);
      expect(faulty.injected.delayed).toBeGreaterThan(10);
      expect(faulty.injected.lostPuts).toBeGreaterThan(3);
      // The same seed gives the same decisions.
      const a = new FaultyStorage(local, { seed: 7, rates: { fail: 0.5 } });
      const b = new FaultyStorage(local, { seed: 7, rates: { fail: 0.5 } });
      const outcomes = async (s: FaultyStorage): Promise<boolean[]> => {
        const out: boolean[] = [];
        for (let i = 0; i < 20; i++) out.push(await s.stat('config').then(() => true, (e: unknown) => !(e instanceof StorageError)));
        return out;
      };
      expect(await outcomes(a)).toEqual(await outcomes(b));
    } finally {
      await cleanup();
    }
  });
});

async function collect(list: AsyncIterable<{ name: string }>): Promise<string[]> {
  const names: string[] = [];
  for await (const info of list) names.push(info.name);
  return names;
}
