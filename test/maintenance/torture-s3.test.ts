import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, tempDir } from '../support/cli.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';
import { seedFromEnv } from '../support/seeded-random.ts';
import { startFaultProxy, type FaultProxy, type FaultProxyStats } from '../support/fault-proxy.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { finalPruneAndCheck, restoreAllMismatches, runTorture, type TortureConfig } from './torture-harness.ts';

/**
 * The torture test (torture.test.ts) against an S3 repository on s3rver, reached through a proxy
 * that fails 10% of the requests in ways a correct client survives (503 SlowDown, dropped
 * connections before or after the server acted, delays, GET bodies cut short): three backup lanes
 * and a forget --prune loop with random SIGKILLs. No process may fail except by being killed.
 *
 * The faults stay on for the final prune, the check --read-data and the restores: those reads
 * must survive cut-short bodies and lost answers too, and a failure there is a failure of the
 * retries just as much as one during the backups. So any error below is the engine's (the proxy
 * lets each request fail at most twice in a row, far below the eight retries of the CLI).
 *
 * Retries: the CLI's retry policy has one knob in the environment, ARCA_STORAGE_TIMEOUT; at
 * 15 s an attempt is abandoned after 20 s and an operation after the (default, generous) 120 s
 * without progress. The backoff is the default full jitter from 250 ms; with at most two failures
 * in a row it waits under 0.75 s per operation. Leases live 8 s (heartbeat 0.8 s): a heartbeat
 * delayed by faults must not make a lease lapse.
 *
 * ARCA_TORTURE_SEED=N replays the random choices (the harness's and the proxy's) of the run that
 * printed seed N.
 */
const LANES = 3;
const FAULT_RATE = 0.1;

describe('torture on S3 through a faulty network', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let s3: S3Server;
  let proxy: FaultProxy;
  let config: TortureConfig;
  const seed = seedFromEnv('ARCA_TORTURE_SEED');

  beforeAll(async () => {
    work = await tempDir('arca-torture-s3-');
    s3 = await startS3Server();
    proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: FAULT_RATE, seed });
    config = {
      seed,
      dir: work.dir,
      repoArgs: ['--repo', `s3://${s3.bucket}/torture`, '--s3-endpoint', proxy.endpoint],
      env: isolatedCloudEnv(work.dir, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, ARCA_STORAGE_TIMEOUT: '15' }),
      lanes: LANES, runForMs: 30_000, killChance: 0.3, killWindowMs: [50, 3000], pruneKillWindowMs: [50, 8000],
      maxFileBytes: 1536 << 10, sharedFiles: 3, sharedMaxBytes: 512 << 10, keepLast: 3, leaseTtlMs: 8000,
    };
    await arcaOk(['init', ...config.repoArgs], { env: config.env });
  });
  afterAll(async () => {
    await proxy.stop();
    await s3.stop();
    await work.cleanup();
  });

  it('loses nothing that was reported complete', { timeout: 180_000 }, async ({ onTestFailed }) => {
    onTestFailed(() => { console.error(`torture on S3 failed with seed ${seed}: ARCA_TORTURE_SEED=${seed} replays its choices`); });
    const { completed, failures, tally } = await runTorture(config);
    const during = proxy.stats();
    expect(failures, `seed ${seed}, ${JSON.stringify(during)}; ${s3.health()}`).toEqual([]);
    expect(completed.size).toBeGreaterThan(LANES);

    const survivors = await finalPruneAndCheck(config, completed);
    expect(survivors.length).toBeGreaterThanOrEqual(LANES);
    expect(await restoreAllMismatches(config, survivors, 3)).toEqual([]);
    tally.verified = survivors.length;
    const total = proxy.stats();
    console.info(`torture-s3: ${JSON.stringify({ ...tally, completed: completed.size, seed, proxyDuringRun: during, proxyTotal: total })}`);
    // The proxy really did fail requests, of every kind during the run, and also during verification.
    const faultsOf = (s: FaultProxyStats): number => Object.values(s.faults).reduce((a, b) => a + b, 0);
    for (const kind of ['slowDown', 'reset', 'delay', 'truncate'] as const) expect(during.faults[kind]).toBeGreaterThan(0);
    expect(faultsOf(total)).toBeGreaterThan(faultsOf(during));
  });
});
