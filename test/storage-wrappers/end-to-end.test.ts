import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CachingStorage } from '../../repository/cache/caching-storage.ts';
import { RepositoryCache } from '../../repository/cache/repository-cache.ts';
import { Checker } from '../../repository/check/checker.ts';
import { Repository } from '../../repository/repository.ts';
import { FaultyStorage, type FaultRates } from '../../repository/storage/faulty.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { RetryingStorage, StorageUnavailableError, type RetryEvent, type RetryingOptions } from '../../repository/storage/retrying.ts';
import type { ByteRange, ObjectContent, ObjectInfo, Storage } from '../../repository/storage/storage.ts';
import { scanTree } from '../support/fs-tree.ts';
import { tempDir } from '../support/cli.ts';
import { CountingStorage } from './counting.ts';
import { backup, KiB, makeTree, pseudoRandom, restore, SMALL_REPO } from './helpers.ts';

const PASSWORD = Buffer.from('faults-test');

/** Retry settings scaled down for tests; the logic is the same as with the defaults. */
const RETRY: RetryingOptions = { retries: 12, baseDelayMs: 5, maxDelayMs: 100, requestTimeoutMs: 1_000, deadlineMs: 10_000 };

/** 10% of requests fail, and on top: delays, hangs, cut bodies and lost put answers. */
const FLAKY: FaultRates = { fail: 0.1, delay: 0.1, maxDelayMs: 30, hang: 0.02, truncate: 0.1, lostPut: 0.1 };

/** Every regular file's content hash by path, and every directory and symlink, under `root`. */
async function contents(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [rel, entry] of await scanTree(root)) out[rel] = `${entry.type}:${entry.size}:${entry.sha256 ?? entry.linkTarget ?? ''}`;
  return out;
}

/** Calls `then` once `count` puts of pack data have reached the storage below. */
class AfterPacks implements Storage {
  readonly location: string;
  private readonly inner: Storage;
  private left: number;
  private readonly then: () => void;

  constructor(inner: Storage, count: number, then: () => void) {
    this.inner = inner;
    this.location = inner.location;
    this.left = count;
    this.then = then;
  }

  async put(name: string, data: ObjectContent): Promise<void> {
    await this.inner.put(name, data);
    if (name.startsWith('data/') && --this.left === 0) this.then();
  }

  get(name: string, range?: ByteRange): Promise<Buffer> { return this.inner.get(name, range); }
  stat(name: string): Promise<ObjectInfo> { return this.inner.stat(name); }
  list(prefix: string): AsyncIterable<ObjectInfo> { return this.inner.list(prefix); }
  delete(name: string): Promise<void> { return this.inner.delete(name); }
}

describe('backup and restore through faulty storage', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let src: string;

  beforeAll(async () => {
    process.env.ARCA_KDF_N = '1024';
    ({ dir: base, cleanup } = await tempDir('arca-faults-'));
    src = path.join(base, 'src');
    await makeTree(src, 12, 6, (i) => (i % 7 === 0 ? 0 : (i * 7919) % (90 * KiB)));
    await fsp.writeFile(path.join(src, 'big.bin'), pseudoRandom('big', 700 * KiB));
    await fsp.symlink('d0/dir0/f1.bin', path.join(src, 'link'));
  });
  afterAll(async () => cleanup());

  /** A later open (with storage back) and a full check, reading every pack, finds no problem. */
  async function checkClean(repoDir: string): Promise<number> {
    const repo = await Repository.open(new LocalStorage(repoDir), PASSWORD);
    const report = await new Checker(repo).run({ readData: { kind: 'all' } });
    expect(report.problems).toEqual([]);
    return report.snapshotsChecked;
  }

  for (const cached of [false, true]) {
    it(`completes byte-exact with 10% of requests failing ${cached ? 'with' : 'without'} the cache`, async () => {
      const repoDir = path.join(base, `flaky-${String(cached)}`);
      await Repository.init(new LocalStorage(repoDir), PASSWORD, SMALL_REPO);
      const counting = new CountingStorage(new LocalStorage(repoDir));
      const faulty = new FaultyStorage(counting, { seed: cached ? 11 : 12, rates: FLAKY });
      const retries: RetryEvent[] = [];
      const options: RetryingOptions = { ...RETRY, onRetry: (e) => retries.push(e) };
      const caches: RepositoryCache[] = [];
      /** Opens the repository as the CLI stacks it: retrying(caching(backend)), backend = faulty(local). */
      const open = async (): Promise<Repository> => {
        const repo = await Repository.open(new RetryingStorage(faulty, options), PASSWORD);
        if (!cached) return repo;
        const cache = await RepositoryCache.open({ root: path.join(base, 'cache'), repoId: repo.config.id });
        if (!cache) throw new Error('the cache did not open');
        caches.push(cache);
        return repo.withStorage(new RetryingStorage(new CachingStorage(faulty, cache.objects), options), { blobCache: cache.trees });
      };
      try {
        let repo = await open();
        await repo.loadIndex();
        const first = await backup(repo, [src]);
        expect(first.summary.files_new).toBe(73);
        await caches.pop()?.close();

        // Change some files, then back up again against the first snapshot.
        await fsp.writeFile(path.join(src, 'd0', 'dir3', 'f2.bin'), pseudoRandom('changed', 40 * KiB));
        await fsp.writeFile(path.join(src, 'd1', 'dir11', 'new.bin'), pseudoRandom('new', 150 * KiB));
        repo = await open();
        await repo.loadIndex();
        const parent = await repo.resolveSnapshot(first.snapshotId);
        const second = await backup(repo, [src], parent);
        expect(second.summary.files_unmodified).toBe(72);
        expect(second.summary.files_changed + second.summary.files_new).toBe(2);

        const target = path.join(base, `target-${String(cached)}`);
        expect((await restore(repo, second.snapshotId, target)).errors).toBe(0);
        expect(await contents(path.join(target, src))).toEqual(await contents(src));
        await caches.pop()?.close();
      } finally {
        for (const c of caches) await c.close();
        // Undo the changes for the next run.
        await fsp.writeFile(path.join(src, 'd0', 'dir3', 'f2.bin'), pseudoRandom(`${src}:20`, (20 * 7919) % (90 * KiB)));
        await fsp.rm(path.join(src, 'd1', 'dir11', 'new.bin'), { force: true });
      }
      const injected = faulty.injected;
      const { gets, puts, stats, lists, deletes } = counting.total;
      const requests = gets + puts + stats + lists + deletes + injected.failed;
      // About 10% of all requests failed, and the other faults happened too (the seeded draws
      // meet requests in whatever order they arrive, so only a loose check is stable).
      expect(injected.failed / requests).toBeGreaterThan(0.02);
      expect(injected.failed / requests).toBeLessThan(0.25);
      expect(injected.delayed).toBeGreaterThan(0);
      expect(injected.truncated + injected.lostPuts + injected.hung).toBeGreaterThan(0);
      expect(retries.length).toBeGreaterThanOrEqual(injected.failed);
      expect(await checkClean(repoDir)).toBe(2);
    });
  }

  it('fails to open within the deadline when the storage is gone, hanging or refusing', async () => {
    const repoDir = path.join(base, 'gone-open');
    await Repository.init(new LocalStorage(repoDir), PASSWORD, SMALL_REPO);
    for (const mode of ['hang', 'fail'] as const) {
      const faulty = new FaultyStorage(new LocalStorage(repoDir), { seed: 3 });
      faulty.goAway(mode);
      // The retry logic's clock is the test's: by the deadline, to the millisecond, the open has failed.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
      let err: unknown = 'still waiting';
      try {
        void Repository.open(new RetryingStorage(faulty, { ...RETRY, retries: 1000, requestTimeoutMs: 300, deadlineMs: 1_500 }), PASSWORD)
          .then(() => { err = 'opened'; }, (e: unknown) => { err = e; });
        await vi.advanceTimersByTimeAsync(1_500);
      } finally {
        vi.useRealTimers();
        faulty.comeBack();
      }
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as Error).message).toMatch(new RegExp(`^Storage ${repoDir} did not answer for 1.5 s while trying to look up config \\(last error: .+\\); check the network and the endpoint\\.$`));
    }
    expect(await checkClean(repoDir)).toBe(0);
  });

  it('fails a backup within the deadline when the storage goes away midway, and leaves the repository valid', async () => {
    const repoDir = path.join(base, 'gone-backup');
    await Repository.init(new LocalStorage(repoDir), PASSWORD, SMALL_REPO);
    for (const mode of ['hang', 'fail'] as const) {
      const faulty = new FaultyStorage(new LocalStorage(repoDir), { seed: 5, rates: { fail: 0.05 } });
      let wentAway = false;
      const trigger = new AfterPacks(faulty, 3, () => {
        faulty.goAway(mode);
        wentAway = true;
      });
      const repo = await Repository.open(new RetryingStorage(trigger, { ...RETRY, requestTimeoutMs: 400, deadlineMs: 2_000 }), PASSWORD);
      await repo.loadIndex();
      // The backup fails rather than waits (how soon is the retry logic's, tested on its own clock).
      const err = await backup(repo, [src]).catch((e: unknown) => e);
      faulty.comeBack();
      expect(wentAway).toBe(true);
      expect(err).toBeInstanceOf(StorageUnavailableError);
    }
    expect(await checkClean(repoDir)).toBe(0);
    // The next backup completes, reusing what the interrupted ones indexed, and restores exactly.
    const repo = await Repository.open(new RetryingStorage(new LocalStorage(repoDir), RETRY), PASSWORD);
    await repo.loadIndex();
    const done = await backup(repo, [src]);
    const target = path.join(base, 'target-after-outage');
    expect((await restore(repo, done.snapshotId, target)).errors).toBe(0);
    expect(await contents(path.join(target, src))).toEqual(await contents(src));
    expect(await checkClean(repoDir)).toBe(1);
  });
});
