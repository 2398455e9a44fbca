import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, tempDir } from '../support/cli.ts';
import { seedFromEnv } from '../support/seeded-random.ts';
import { finalPruneAndCheck, restoreMismatches, runTorture, type TortureConfig } from './torture-harness.ts';

/**
 * Four backup processes (of different and of overlapping directories) and a forget --prune loop
 * run at once against one local repository, and any of them may be SIGKILLed at a random moment.
 * Afterwards the repository must check clean, reading every blob, and every snapshot that a
 * process reported as completed (and that retention kept) must restore byte-exactly.
 * ARCA_TORTURE_SEED=N replays the random choices of the run that printed seed N.
 */
const LANES = 4;
const seed = seedFromEnv('ARCA_TORTURE_SEED');

describe('torture: concurrent backups, prune and kills', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let config: TortureConfig;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('arca-torture-'));
    const repo = path.join(dir, 'repo');
    config = {
      seed, dir, repoArgs: ['--repo', repo], env: {}, lanes: LANES, runForMs: 35_000, killChance: 0.3, killWindowMs: [50, 1500],
      maxFileBytes: 3 << 20, sharedFiles: 4, sharedMaxBytes: 1 << 20, keepLast: 3, leaseTtlMs: 3000,
    };
    await arcaOk(['init', '--repo', repo]);
  });
  afterAll(async () => cleanup());

  it('loses nothing that was reported complete', { timeout: 300_000 }, async ({ onTestFailed }) => {
    onTestFailed(() => { console.error(`torture failed with seed ${seed}: ARCA_TORTURE_SEED=${seed} replays its choices`); });
    const { completed, failures, tally } = await runTorture(config);
    expect(failures).toEqual([]);
    expect(completed.size).toBeGreaterThan(LANES);

    // Once the leases of killed processes have expired, one clean prune sweeps every plan.
    const survivors = await finalPruneAndCheck(config, completed);
    expect(survivors.length).toBeGreaterThanOrEqual(LANES);
    for (const [id, manifest] of survivors) {
      expect(await restoreMismatches(config, id, manifest)).toEqual([]);
      tally.verified++;
    }
    console.info(`torture: ${JSON.stringify({ ...tally, completed: completed.size, seed })}`);
  });
});
