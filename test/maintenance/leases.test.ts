import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Lease, type LeaseTiming } from '../../repository/maintenance/leases.ts';
import { Repository } from '../../repository/repository.ts';
import { FaultyStorage } from '../../repository/storage/faulty.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { arcaOk, tempDir } from '../support/cli.ts';

/**
 * A lease on a slow storage: every request is held back up to 100 ms, ten times a heartbeat.
 * Found by the stall torture test: the first heartbeat ran before the lease existed (a lapse out
 * of nothing), and one still under way at release wrote the lease back after it was removed.
 */
const SLOW_TIMING: LeaseTiming = { ttlMs: 60_000, heartbeatMs: 10 };

describe('a lease on a slow storage', () => {
  let repoDir: string;
  let cleanup: () => Promise<void>;
  let repo: Repository;
  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir());
    repoDir = path.join(dir, 'repo');
    await arcaOk(['init', '--repo', repoDir]);
    const local = new LocalStorage(repoDir);
    const opened = await Repository.open(local, Buffer.from('test-password'));
    repo = opened.withStorage(new FaultyStorage(local, { seed: 18, rates: { delay: 1, maxDelayMs: 100 } }));
  });
  afterEach(async () => cleanup());

  const leaseObjects = async (): Promise<string[]> => readdir(path.join(repoDir, 'leases')).catch(() => []);

  it('stands from the first heartbeat on, and is gone for good once released', async () => {
    const lease = await Lease.acquire(repo, 'backup', { timing: SLOW_TIMING });
    await sleep(300); // Some thirty heartbeats, each of them slow.
    await lease.confirm();
    lease.assertFresh();
    await lease.release();
    expect(await leaseObjects()).toEqual([]);
    await sleep(300); // No heartbeat that was under way at release puts it back.
    expect(await leaseObjects()).toEqual([]);
  });
});
