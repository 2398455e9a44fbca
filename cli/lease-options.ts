import { existsSync, writeFileSync } from 'node:fs';
import { UsageError } from '../repository/errors.ts';
import { PAUSE_POINTS, type Clock, type PauseHook, type PausePoint } from '../repository/maintenance/coordination.ts';
import { DEFAULT_LEASE_TIMING, type LeaseOptions, type LeaseTiming } from '../repository/maintenance/leases.ts';

/**
 * Lease options of this process. ARCA_LEASE_TTL_MS shortens the lease lifetime (tests, benchmarks);
 * two variables exist for tests only, to replay interleavings deterministically:
 * ARCA_TEST_CLOCK_SKEW_MS moves this process's wall clock, and ARCA_TEST_PAUSE_AT=POINT:FILE[,...]
 * stalls the process at a pause point (its event loop blocked, as if the host were suspended):
 * it creates FILE.reached and goes on once FILE exists.
 */
export function leaseOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): LeaseOptions {
  return { timing: timingOf(env.ARCA_LEASE_TTL_MS), clock: clockOf(env.ARCA_TEST_CLOCK_SKEW_MS), pause: pauseOf(env.ARCA_TEST_PAUSE_AT) };
}

function timingOf(text: string | undefined): LeaseTiming {
  if (text === undefined || text === '') return DEFAULT_LEASE_TIMING;
  const ttl = Number(text);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError(`ARCA_LEASE_TTL_MS must be a positive number of milliseconds, not "${text}".`);
  return { ttlMs: ttl, heartbeatMs: Math.max(10, Math.floor(ttl / 10)) };
}

function clockOf(text: string | undefined): Clock | undefined {
  if (text === undefined || text === '') return undefined;
  const skew = Number(text);
  if (!Number.isInteger(skew)) throw new UsageError(`ARCA_TEST_CLOCK_SKEW_MS must be a whole number of milliseconds, not "${text}".`);
  return { now: () => Date.now() + skew };
}

function pauseOf(text: string | undefined): PauseHook | undefined {
  if (text === undefined || text === '') return undefined;
  const files = new Map<PausePoint, string>();
  for (const item of text.split(',')) {
    const colon = item.indexOf(':');
    const point = item.slice(0, colon) as PausePoint;
    if (colon < 0 || !PAUSE_POINTS.includes(point)) throw new UsageError(`ARCA_TEST_PAUSE_AT takes POINT:FILE items with POINT one of ${PAUSE_POINTS.join(', ')}, not "${item}".`);
    files.set(point, item.slice(colon + 1));
  }
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  return (point) => {
    const file = files.get(point);
    if (file === undefined) return;
    files.delete(point); // Once per process: a point passed again later goes on.
    writeFileSync(`${file}.reached`, '');
    // Blocks the whole event loop, heartbeat timers included: a stalled process, not a waiting one.
    while (!existsSync(file)) Atomics.wait(sleeper, 0, 0, 20);
  };
}
