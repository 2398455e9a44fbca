import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteServer } from '../support/azurite.ts';
import { summaryOf, tempDir, type RunResult } from '../support/cli.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { Arena, type RepositoryTarget } from './interleavings.ts';

/**
 * The seven ways of issue 18 in which prune beside writers lost data, each replayed with CLI
 * processes held at named pause points (a held process is stalled: no heartbeats) and with
 * skewed clocks. Each ends with `check --read-data` clean and every snapshot restoring byte-exact.
 */
const SHORT = { ARCA_LEASE_TTL_MS: '3000' };
const MEDIUM = { ARCA_LEASE_TTL_MS: '5000' };
/** Long enough for a lease of `ttl` ms to have expired, whoever judges it. */
const expiry = (ttl: string): Promise<void> => sleep(Number(ttl) * 1.5 + 1000);
const LAPSED = 11;

interface Source { readonly dir: string; readonly files: Map<string, Buffer> }

type Scenario = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

/** The scenarios in `only` (all by default) against the repository `targetOf` names for a fresh directory. */
function scenarios(name: string, targetOf: (dir: string, n: number) => RepositoryTarget | undefined, only: ReadonlySet<Scenario> = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9])): void {
  describe(name, () => {
    let arena: Arena;
    let cleanup: () => Promise<void>;
    /** Snapshot ID → what it must restore to. */
    let expected: Map<string, Source>;
    let count = 0;
    // A backend variant registers only its scenarios, rather than listing the others as skipped.
    const itIn = (n: Scenario) => (title: string, fn: () => Promise<void>): void => {
      if (only.has(n)) it(title, fn);
    };

    beforeEach(async () => {
      let dir: string;
      ({ dir, cleanup } = await tempDir('arca-interleave-'));
      arena = new Arena(dir, targetOf(dir, count++));
      expected = new Map();
      await arena.init();
    });
    afterEach(async () => cleanup());

    async function backup(src: Source, env: Record<string, string> = {}): Promise<string> {
      const id = await arena.backup(src.dir, env);
      expected.set(id, src);
      return id;
    }

    /** A finished writer's result: its snapshot, if it reported one, must restore like the rest. */
    function finished(result: RunResult, src: Source): void {
      if (result.code === 0) expected.set(String(summaryOf(result.stdout).snapshot_id), src);
    }

    /** The end of every scenario: a clean check reading all data, every snapshot byte-exact, and a new backup that restores. */
    async function assertWhole(src: Source): Promise<void> {
      await arena.checkClean();
      const after = await backup(src);
      await arena.checkClean();
      const ids = await arena.snapshotIds();
      expect(ids).toContain(after);
      for (const id of ids) {
        const source = expected.get(id);
        expect(source, `snapshot ${id} was written by no writer that reported success`).toBeDefined();
        if (source) expect(await arena.restoreMismatches(id, source.dir, source.files)).toEqual([]);
      }
    }

    itIn(1)('1: a writer stalled past its lease never writes after a prune deleted what it relies on', async () => {
      const src = await arena.source('src', 3, 1 << 20);
      await arena.forget(await backup(src));
      const writer = arena.start(['backup', '--json', src.dir], 'index-loaded', SHORT);
      await writer.reached;
      await expiry(SHORT.ARCA_LEASE_TTL_MS);
      await arena.ok(['prune'], SHORT);
      await writer.go();
      const result = await writer.done;
      expect(result.code, result.stderr).toBe(LAPSED);
      expect(result.stderr).toMatch(/lease/);
      await assertWhole(src);
    });

    itIn(2)('2: the index file of a stalled writer never names packs deleted meanwhile, so later backups lose nothing', async () => {
      const old = await arena.source('old', 1, 1 << 20);
      await backup(old);
      const src = await arena.source('src', 3, 1 << 20);
      const writer = arena.start(['backup', '--json', src.dir], 'index-write', SHORT);
      await writer.reached; // Its packs are stored, not yet indexed.
      await expiry(SHORT.ARCA_LEASE_TTL_MS);
      await arena.ok(['prune'], SHORT);
      await writer.go();
      const result = await writer.done;
      expect(result.code, result.stderr).toBe(LAPSED);
      await assertWhole(src);
    });

    for (const [label, skew] of [['6 minutes ahead', 6 * 60_000], ['16 minutes behind', -16 * 60_000]] as const) {
      itIn(3)(`3: a writer whose clock is ${label} keeps its lease with the default timings`, async () => {
        const src = await arena.source('src', 3, 1 << 20);
        await arena.forget(await backup(src));
        const writer = arena.start(['backup', '--json', src.dir], 'index-loaded', { ARCA_TEST_CLOCK_SKEW_MS: String(skew) });
        await writer.reached;
        const first = await arena.ok(['prune', '--json']);
        expect(JSON.parse(first.stdout)).toMatchObject({ packs_deleted: 0, plans_pending: 1 });
        await writer.go();
        const result = await writer.done;
        expect(result.code, result.stderr).toBe(0);
        finished(result, src);
        await arena.ok(['prune']);
        await assertWhole(src);
      });
    }

    itIn(4)('4: a prune stalled past its lease never writes after another prune acted', async () => {
      const a = await arena.source('a', 1, 1 << 20);
      const b = await arena.source('b', 1, 1 << 20);
      const c = await arena.source('c', 1, 1 << 20);
      await backup(a);
      const bId = await backup(b);
      await arena.forget(await backup(c));
      const stalled = arena.start(['prune'], 'prune-marked', SHORT);
      await stalled.reached;
      await arena.forget(bId);
      expected.delete(bId);
      await expiry(SHORT.ARCA_LEASE_TTL_MS);
      await arena.ok(['prune'], SHORT);
      await stalled.go();
      const result = await stalled.done;
      expect(result.code, result.stderr).toBe(LAPSED);
      await assertWhole(b);
    });

    itIn(5)('5: a prune killed between its completed plan and deleting its draft leaves nothing that a later prune half-keeps', async () => {
      const src = await arena.source('src', 3, 1 << 20);
      await arena.forget(await backup(src));
      const writer = arena.start(['backup', '--json', src.dir], 'index-loaded', MEDIUM);
      await writer.reached;
      const killed = arena.start(['prune'], 'prune-plan-completed', MEDIUM);
      await killed.reached;
      killed.kill();
      await killed.done;
      await writer.go();
      const result = await writer.done;
      expect(result.code, result.stderr).toBe(0);
      finished(result, src);
      await expiry(MEDIUM.ARCA_LEASE_TTL_MS); // The killed prune's lease.
      await arena.ok(['prune'], MEDIUM);
      await assertWhole(src);
    });

    itIn(6)('6: two prunes at once lose nothing', async () => {
      const src = await arena.source('src', 3, 1 << 20);
      await arena.forget(await backup(src));
      const writer = arena.start(['backup', '--json', src.dir], 'index-loaded');
      await writer.reached;
      const second = arena.start(['prune'], 'prune-plans-listed');
      await second.reached;
      const first = await arena.run(['prune']);
      expect(first.code === 0 || /another prune/i.test(first.stderr), first.stderr).toBe(true);
      await writer.go();
      const result = await writer.done;
      expect(result.code, result.stderr).toBe(0);
      finished(result, src);
      await second.go();
      expect((await second.done).code).toBe(0);
      await arena.ok(['prune']);
      await assertWhole(src);
    });

    itIn(7)('7: nothing indexes a pack that is gone: repair index holds a lease, and later backups lose nothing', async () => {
      const src = await arena.source('src', 3, 1 << 20);
      await arena.forget(await backup(src));
      // A writer holds the plan back, then dies: its lease expires by itself.
      const writer = arena.start(['backup', '--json', src.dir], 'index-loaded', MEDIUM);
      await writer.reached;
      expect(JSON.parse((await arena.ok(['prune', '--json'], MEDIUM)).stdout)).toMatchObject({ plans_pending: 1 });
      writer.kill();
      await writer.done;
      const repair = arena.start(['repair', 'index'], 'repair-packs-read', MEDIUM);
      await repair.reached; // It has read the headers of the planned packs.
      await expiry(MEDIUM.ARCA_LEASE_TTL_MS);
      await arena.run(['prune'], MEDIUM);
      await repair.go();
      await repair.done;
      await assertWhole(src);
    });

    itIn(8)('8: a snapshot finished while a prune runs stays indexed when that prune compacts the index', async () => {
      // Found by the torture tests: the sweep loads the index files of snapshots made since the
      // prune listed the packs, and compaction replaced those files without their packs.
      await backup(await arena.source('kept', 1, 1 << 20)); // An index file that compaction merges with the new one.
      const old = await arena.source('old', 1, 1 << 20);
      await arena.forget(await backup(old));
      const writer = arena.start(['backup', '--json', old.dir], 'index-loaded');
      await writer.reached;
      expect(JSON.parse((await arena.ok(['prune', '--json'])).stdout)).toMatchObject({ plans_pending: 1 });
      const pruning = arena.start(['prune'], 'prune-packs-listed');
      await pruning.reached;
      const src = await arena.source('src', 3, 1 << 20);
      await backup(src);
      await pruning.go();
      const pruned = await pruning.done;
      expect(pruned.code, pruned.stderr).toBe(0);
      await arena.checkClean();
      await writer.go();
      finished(await writer.done, old);
      await arena.ok(['prune']);
      await assertWhole(src);
    });

    itIn(9)('9: a snapshot that a revoked writer lands and takes back does not stop a prune that reads it meanwhile', async () => {
      // Found by the stalls torture test: the writer stalled between confirming its lease and
      // storing its snapshot; a prune revoked it and deleted its packs; a second prune read the
      // snapshot in the moment before its writer took it back, and refused to run.
      const src = await arena.source('src', 1, 1 << 20);
      await backup(src);
      const late = await arena.source('late', 2, 1 << 20);
      const writer = arena.start(['backup', '--json', late.dir], ['snapshot-confirmed', 'snapshot-landed'], SHORT);
      await writer.reached;
      await expiry(SHORT.ARCA_LEASE_TTL_MS);
      const first = JSON.parse((await arena.ok(['prune', '--json'], SHORT)).stdout) as { packs_deleted: number };
      expect(first.packs_deleted).toBeGreaterThan(0); // The writer's packs: nothing used them.
      await writer.go();
      await writer.at('snapshot-landed').reached;
      const second = arena.start(['prune'], undefined, SHORT);
      while (!/waiting for its writer to take it back/.test(second.stderr())) {
        if (await Promise.race([second.done.then(() => true), sleep(20).then(() => false)])) break;
      }
      await writer.at('snapshot-landed').go();
      const result = await writer.done;
      expect(result.code, result.stderr).toBe(LAPSED);
      const pruned = await second.done;
      expect(pruned.code, pruned.stderr).toBe(0);
      expect(pruned.stderr).toMatch(/waiting for its writer to take it back/);
      await assertWhole(src);
    });
  });
}

scenarios('prune beside writers (issue 18), local repository', () => undefined);

/** The revocation and the one-prune rule depend on the backend (modification times, listings): on s3rver and Azurite too. */
describe('on object stores', () => {
  let s3: S3Server;
  let azurite: AzuriteServer;
  let work: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    work = await tempDir('arca-interleave-cloud-');
    [s3, azurite] = await Promise.all([startS3Server(), startAzurite()]);
  });
  afterAll(async () => {
    await Promise.all([s3.stop(), azurite.stop(), work.cleanup()]);
  });
  const env = (): Record<string, string | undefined> => isolatedCloudEnv(work.dir, {
    AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
  });
  const cloud = new Set<Scenario>([1, 4, 6, 8]);
  scenarios('S3 (s3rver)', (_dir, n) => ({ repoArgs: ['--repo', `s3://${s3.bucket}/interleave/${n}`, '--s3-endpoint', s3.endpoint], env: env() }), cloud);
  scenarios('Azure (Azurite)', (_dir, n) => ({ repoArgs: ['--repo', `azure://${azurite.container}/interleave/${n}`], env: env() }), cloud);
});
