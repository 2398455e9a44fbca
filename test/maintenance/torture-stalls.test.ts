import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { arcaOk, startArca, summaryOf, tempDir, type RunResult } from '../support/cli.ts';
import { SeededRandom, seedFromEnv } from '../support/seeded-random.ts';
import { finalPruneAndCheck, isBusy, manifestOf, restoreAllMismatches, type Manifest, type TortureConfig } from './torture-harness.ts';

/**
 * Torture with what issue 18 added to kills: backups and two forget --prune loops at once, every
 * process on a clock skewed by up to ±20 minutes, and any of them stalled (SIGSTOP, then SIGCONT)
 * for up to twice the lease lifetime, or killed. A run may fail only by being killed, by losing its
 * lease (exit 11: revoked while stalled, nothing of it in use) or, for a prune, by finding another
 * prune running (exit 11). Afterwards the repository checks clean reading every blob and every
 * snapshot reported complete (that retention kept) restores byte-exactly.
 * ARCA_TORTURE_SEED=N replays the random choices (one stream per lane and per pruner) of the run
 * that printed seed N; the timing of the processes still varies.
 */
const seed = seedFromEnv('ARCA_TORTURE_SEED');
const LANES = 3;
const TTL_MS = 2000;

describe('torture: stalls, skewed clocks and two prunes', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let config: TortureConfig;
  beforeAll(async () => {
    work = await tempDir('arca-torture-stalls-');
    const repo = path.join(work.dir, 'repo');
    config = {
      seed, dir: work.dir, repoArgs: ['--repo', repo], env: {}, lanes: LANES, runForMs: 30_000, killChance: 0.15, killWindowMs: [50, 1500],
      maxFileBytes: 2 << 20, sharedFiles: 0, sharedMaxBytes: 0, keepLast: 2, leaseTtlMs: TTL_MS,
    };
    await arcaOk(['init', '--repo', repo]);
  });
  let keep = false;
  afterAll(async () => { if (!keep) await work.cleanup(); });
  /** What each process did, printed when the test fails. */
  const timeline: string[] = [];
  const t0 = Date.now();
  const note = (line: string): void => { timeline.push(`${String(Date.now() - t0).padStart(6)} ${line}`); };

  /** Runs arca with a random skew, maybe stalling it once and maybe killing it. */
  async function runDisturbed(random: SeededRandom, args: readonly string[]): Promise<RunResult & { killed: boolean }> {
    const skew = random.int(-20 * 60_000, 20 * 60_000);
    const child = startArca([...args, ...config.repoArgs], { env: { ARCA_WORKERS: '1', ARCA_LEASE_TTL_MS: String(TTL_MS), ARCA_TEST_CLOCK_SKEW_MS: String(skew) } });
    const who = `pid ${String(child.pid)} ${args.slice(0, 1).concat(args.filter((a) => a.startsWith('lane='))).join(' ')}`;
    note(`${who} starts`);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => { child.on('close', (code, signal) => { resolve({ code, signal }); }); });
    const disturb = (async (): Promise<void> => {
      const roll = random.int(0, 100);
      const after = random.int(50, 1500);
      const stall = random.int(100, 2 * TTL_MS);
      if (roll >= 50) return;
      await Promise.race([sleep(after), done]);
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (roll < 15) {
        note(`${who} killed`);
        child.kill('SIGKILL');
        return;
      }
      note(`${who} stopped for ${String(stall)} ms`);
      child.kill('SIGSTOP');
      await sleep(stall);
      note(`${who} continued`);
      child.kill('SIGCONT');
    })();
    const { code, signal } = await done;
    await disturb;
    note(`${who} ended ${String(code ?? signal)} ${code === 0 && args[0] === 'backup' ? stdout.trim() : stderr.trim()}`);
    return { code, signal, stdout, stderr, killed: signal === 'SIGKILL' };
  }

  it('loses nothing that was reported complete', { timeout: 300_000 }, async () => {
    onTestFailed(() => {
      keep = true;
      console.error(`torture-stalls failed with seed ${seed}: ARCA_TORTURE_SEED=${seed} replays its choices; its repository is kept in ${work.dir}`);
      console.error(timeline.join('\n'));
    });
    const completed = new Map<string, Manifest>();
    const failures: string[] = [];
    const tally = { backups: 0, prunes: 0, killed: 0, lapsed: 0, busy: 0 };
    const deadline = Date.now() + config.runForMs;
    const accept = (what: string, result: RunResult & { killed: boolean }): void => {
      if (result.killed) tally.killed++;
      else if (isBusy(result)) tally.busy++;
      else if (result.code === 11) tally.lapsed++;
      else if (result.code !== 0) failures.push(`${what} exited ${String(result.code)}: ${result.stderr}`);
    };
    const lane = async (n: number): Promise<void> => {
      const random = new SeededRandom(seed + 1 + n);
      const own = path.join(work.dir, `lane${n}`);
      await mkdir(own);
      for (let round = 0; Date.now() < deadline; round++) {
        await writeFile(path.join(own, `f${round}`), random.bytes(random.int(0, config.maxFileBytes)));
        if (round > 2 && random.chance(0.3)) await rm(path.join(own, `f${random.int(0, round)}`), { force: true });
        const manifest = await manifestOf([own]);
        const result = await runDisturbed(random, ['backup', '--json', '--quiet', '--tag', `lane=${n}`, own]);
        tally.backups++;
        accept(`lane ${n} backup`, result);
        if (result.code === 0) completed.set(String(summaryOf(result.stdout).snapshot_id), manifest);
      }
    };
    const pruner = async (n: number): Promise<void> => {
      const random = new SeededRandom(seed + 100 + n);
      while (Date.now() < deadline) {
        const result = await runDisturbed(random, ['forget', '--keep-last', String(config.keepLast), '--group-by', 'tag:lane', '--prune', '--quiet']);
        tally.prunes++;
        accept('forget --prune', result);
        await sleep(random.int(100, 1000));
      }
    };
    await Promise.all([...Array.from({ length: LANES }, (_, n) => lane(n)), pruner(0), pruner(1)]);
    expect(failures, `seed ${seed}, repository kept in ${work.dir}`).toEqual([]);
    expect(completed.size).toBeGreaterThan(LANES);

    const survivors = await finalPruneAndCheck(config, completed);
    expect(survivors.length).toBeGreaterThanOrEqual(LANES);
    expect(await restoreAllMismatches(config, survivors, 2)).toEqual([]);
    console.info(`torture-stalls: ${JSON.stringify({ ...tally, seed, completed: completed.size, verified: survivors.length })}`);
  });
});
