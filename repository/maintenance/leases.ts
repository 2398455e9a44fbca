import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { ArcaError } from '../errors.ts';
import { LEASES_PREFIX, leaseName } from '../object-names.ts';
import type { Repository } from '../repository.ts';

/**
 * A writer's lease: proof, visible to prune, that a backup, copy or prune is running and may rely
 * on the index it loaded. Nobody ever waits to acquire one and nobody has to clear one: a lease
 * whose heartbeat stops expires by itself (docs/format.md §9).
 */
export type LeaseKind = 'backup' | 'copy' | 'prune' | 'agent';

export interface LeaseRecord {
  readonly version: 1;
  readonly id: string;
  readonly kind: LeaseKind;
  readonly hostname: string;
  readonly pid: number;
  /** When the writer started, before it loaded the index (ISO 8601, the writer's clock). */
  readonly started: string;
  /** Last heartbeat (ISO 8601, the writer's clock). */
  readonly heartbeat: string;
}

export interface LeaseTiming {
  /** A lease without a heartbeat for this long is expired. */
  readonly ttlMs: number;
  /** How often the holder rewrites its lease. */
  readonly heartbeatMs: number;
  /** Clock difference between hosts that prune tolerates. */
  readonly skewMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { ttlMs: 10 * 60_000, heartbeatMs: 60_000, skewMs: 5 * 60_000 };

/** Lease timing, shortened by tests and benchmarks through ARCA_LEASE_TTL_MS (heartbeat = TTL/10, skew = TTL/2). */
export function leaseTiming(): LeaseTiming {
  const ttl = Number(process.env.ARCA_LEASE_TTL_MS ?? '');
  if (!Number.isInteger(ttl) || ttl <= 0) return DEFAULT_LEASE_TIMING;
  return { ttlMs: ttl, heartbeatMs: Math.max(10, Math.floor(ttl / 10)), skewMs: Math.floor(ttl / 2) };
}

/** The holder went longer than the TTL without a successful heartbeat: prune may have acted meanwhile. */
export class LeaseLapsedError extends ArcaError {
  constructor(seconds: number) {
    super('ARCA_ERR_LEASE_LAPSED', `This run could not renew its lease for ${seconds.toFixed(0)} s, longer than the lease lifetime, so a concurrent prune may have removed data it relies on; nothing was lost, run the command again.`);
  }
}

export class Lease {
  readonly record: LeaseRecord;
  private readonly repo: Repository;
  private readonly timing: LeaseTiming;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() of the last heartbeat that storage accepted. */
  private lastBeat: number;
  /**
   * The longest time the lease went unrenewed so far. A lapse stays a lapse: a prune may have
   * acted while it lasted, and no later heartbeat undoes that.
   */
  private longestGap = 0;

  private constructor(repo: Repository, record: LeaseRecord, timing: LeaseTiming) {
    this.repo = repo;
    this.record = record;
    this.timing = timing;
    this.lastBeat = performance.now();
  }

  /** Writes a new lease and starts its heartbeat. Call before loading the index. */
  static async acquire(repo: Repository, kind: LeaseKind, timing: LeaseTiming = leaseTiming()): Promise<Lease> {
    const now = new Date().toISOString();
    const record: LeaseRecord = {
      version: 1, id: randomBytes(16).toString('hex'), kind, hostname: os.hostname(), pid: process.pid, started: now, heartbeat: now,
    };
    const lease = new Lease(repo, record, timing);
    const before = performance.now();
    await lease.write(record);
    lease.lastBeat = before;
    lease.timer = setInterval(() => { void lease.beat(); }, timing.heartbeatMs);
    lease.timer.unref();
    return lease;
  }

  /** Throws LeaseLapsedError when the lease may have looked expired to a prune, now or at any time before. */
  assertFresh(): void {
    const gap = Math.max(this.longestGap, performance.now() - this.lastBeat);
    if (gap > this.timing.ttlMs) throw new LeaseLapsedError(gap / 1000);
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.repo.storage.delete(leaseName(this.record.id));
  }

  private async beat(): Promise<void> {
    const started = performance.now();
    try {
      await this.write({ ...this.record, heartbeat: new Date().toISOString() });
      this.longestGap = Math.max(this.longestGap, performance.now() - this.lastBeat);
      this.lastBeat = started;
    } catch {
      // A missed heartbeat only brings expiry closer; assertFresh() reports it if it matters.
    }
  }

  private async write(record: LeaseRecord): Promise<void> {
    await this.repo.writeSealedObjectAs(leaseName(record.id), 'lease', Buffer.from(JSON.stringify(record)));
  }
}

/** Every lease in the repository; unreadable ones are skipped (they cannot belong to a writer with the key). */
export async function listLeases(repo: Repository): Promise<LeaseRecord[]> {
  const leases: LeaseRecord[] = [];
  for await (const obj of repo.storage.list(LEASES_PREFIX)) {
    try {
      const record = JSON.parse((await repo.readSealedObject(obj.name, 'lease')).toString('utf8')) as Partial<Omit<LeaseRecord, 'version'>> & { version?: unknown };
      if (record.version === 1 && typeof record.started === 'string' && typeof record.heartbeat === 'string'
        && !Number.isNaN(Date.parse(record.started)) && !Number.isNaN(Date.parse(record.heartbeat))) leases.push(record as LeaseRecord);
    } catch {
      // Deleted between list and get, or not ours.
    }
  }
  return leases;
}

/** Whether a lease's holder may still be running, seen from this host's clock. */
export function isLive(lease: LeaseRecord, now: Date, timing: LeaseTiming): boolean {
  return now.getTime() - Date.parse(lease.heartbeat) < timing.ttlMs + timing.skewMs;
}
