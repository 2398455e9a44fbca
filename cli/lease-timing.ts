import { DEFAULT_LEASE_TIMING, leaseTimingForTtl, type LeaseTiming } from '../repository/maintenance/leases.ts';

/** Lease timing of this process: ARCA_LEASE_TTL_MS shortens the lifetime (tests, benchmarks). */
export function leaseTiming(env: NodeJS.ProcessEnv = process.env): LeaseTiming {
  const ttl = Number(env.ARCA_LEASE_TTL_MS ?? '');
  return Number.isInteger(ttl) && ttl > 0 ? leaseTimingForTtl(ttl) : DEFAULT_LEASE_TIMING;
}
