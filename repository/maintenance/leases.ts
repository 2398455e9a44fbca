import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { ArcaError } from '../errors.ts';
import { LEASES_PREFIX, leaseName, revocationName } from '../object-names.ts';
import type { Repository, WriterLease } from '../repository.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';
import { systemClock, type Clock, type PauseHook, type PausePoint } from './coordination.ts';

/**
 * A writer's lease: proof, visible to prune, that a backup, copy, repair or prune is running and
 * may rely on the index it loaded. Nobody waits to acquire one and nobody has to clear one: a
 * lease that is not renewed for its TTL, by the storage's clock, may be revoked by a prune, and
 * its holder then never writes an index file or a snapshot again (docs/format.md §9).
 */
export type LeaseKind = 'backup' | 'copy' | 'repair-snapshots' | 'prune' | 'repair-index';

/** Kinds that change what the index says about existing packs: at most one such lease at a time. */
const EXCLUSIVE_KINDS: ReadonlySet<LeaseKind> = new Set(['prune', 'repair-index']);

export interface LeaseRecord {
  readonly version: 1;
  readonly id: string;
  readonly kind: LeaseKind;
  readonly hostname: string;
  readonly pid: number;
  /** When the writer started (ISO 8601, the holder's clock: for people, never compared across hosts). */
  readonly started: string;
  /** Its last heartbeat (ISO 8601, the holder's clock, likewise). */
  readonly heartbeat: string;
}

export interface LeaseTiming {
  /** A lease the storage has not seen renewed for this long may be revoked. */
  readonly ttlMs: number;
  /** How often the holder rewrites its lease. */
  readonly heartbeatMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { ttlMs: 10 * 60_000, heartbeatMs: 60_000 };

export interface LeaseOptions {
  readonly timing: LeaseTiming;
  /** The holder's wall clock (default: the system's); only the record's informational times use it. */
  readonly clock?: Clock | undefined;
  /** Where a test holds the process (coordination.ts). */
  readonly pause?: PauseHook | undefined;
}

/** The lease was revoked (or removed) while its holder was stalled or cut off: it must not write on. */
export class LeaseLapsedError extends ArcaError {
  constructor() {
    super('ARCA_ERR_LEASE_LAPSED', 'This run lost its lease (it went longer than the lease lifetime without renewing it, e.g. while suspended or cut off from the storage, and a prune revoked it), so data it relied on may be gone; it wrote nothing that is in use: run the command again.');
  }
}

/** Another prune or `repair index` holds a live lease. */
export class MaintenanceBusyError extends ArcaError {
  constructor(other: LeaseRecord) {
    super('ARCA_ERR_MAINTENANCE_BUSY', `Another prune or index repair is running (${other.kind} on ${other.hostname}, pid ${other.pid}, since ${other.started}); try again when it has finished, or see "arca leases".`);
  }
}

type LeaseState = 'held' | 'lapsed' | 'released';

export class Lease implements WriterLease {
  readonly record: LeaseRecord;
  private readonly repo: Repository;
  private readonly clock: Clock;
  private readonly pauseHook: PauseHook | undefined;
  private readonly heartbeatMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** The heartbeat under way (one at a time), which release() lets finish before it removes the lease. */
  private beating: Promise<void> | undefined;
  private state: LeaseState = 'held';
  private released: Promise<void> | undefined;

  private constructor(repo: Repository, record: LeaseRecord, options: LeaseOptions) {
    this.repo = repo;
    this.record = record;
    this.clock = options.clock ?? systemClock;
    this.pauseHook = options.pause;
    this.heartbeatMs = options.timing.heartbeatMs;
  }

  /**
   * Writes a new lease, starts its heartbeat, and makes every index file, snapshot and plan that
   * `repo` writes from now on go through guard(). Call before loading the index.
   */
  static async acquire(repo: Repository, kind: LeaseKind, options: LeaseOptions): Promise<Lease> {
    const now = new Date((options.clock ?? systemClock).now()).toISOString();
    const record: LeaseRecord = {
      version: 1, id: randomBytes(16).toString('hex'), kind, hostname: os.hostname(), pid: process.pid, started: now, heartbeat: now,
    };
    const lease = new Lease(repo, record, options);
    await lease.write(record);
    // Only now: a heartbeat that ran before the lease existed would find it absent, a lapse.
    lease.timer = setInterval(() => { lease.beating ??= lease.beat().finally(() => { lease.beating = undefined; }); }, lease.heartbeatMs);
    lease.timer.unref();
    repo.attachLease(lease);
    return lease;
  }

  /**
   * A lease for prune or `repair index`: refused while another such lease is live, and any expired
   * one is revoked. Each writes its lease before it lists the others, so of two that start at once
   * at least the later one sees the earlier (both may see each other and give up: never both go on).
   */
  static async acquireExclusive(repo: Repository, kind: 'prune' | 'repair-index', options: LeaseOptions): Promise<Lease> {
    const lease = await Lease.acquire(repo, kind, options);
    try {
      const observed = await observeLeases(repo);
      for (const other of observed.leases) {
        if (other.record.id === lease.record.id || other.revoked || !EXCLUSIVE_KINDS.has(other.record.kind)) continue;
        if (observed.ageOf(other) <= options.timing.ttlMs) throw new MaintenanceBusyError(other.record);
        await revokeLease(repo, other.record.id);
      }
      return lease;
    } catch (err) {
      await lease.release();
      throw err;
    }
  }

  async pause(point: PausePoint): Promise<void> {
    await this.pauseHook?.(point);
  }

  /** Throws LeaseLapsedError once the lease is known to be lost (a cheap check, no request). */
  assertFresh(): void {
    if (this.state !== 'held') throw new LeaseLapsedError();
  }

  /**
   * Asks the storage whether the lease still stands: not revoked and not removed. Once it has not,
   * it never does again (the lapse is sticky), whatever a heartbeat writes later.
   */
  async confirm(): Promise<void> {
    this.assertFresh();
    const [revoked, present] = await Promise.all([exists(this.repo, revocationName(this.record.id)), exists(this.repo, leaseName(this.record.id))]);
    if (revoked || !present) this.lapse();
    this.assertFresh();
  }

  /**
   * Runs a write of an object others rely on (index file, snapshot, plan): the lease is confirmed
   * before, so a lapsed holder writes nothing, and after, so a holder that stalled within the
   * write and was revoked meanwhile takes the object back (`undo`) and fails. A write confirmed
   * after it landed landed before any revocation, and so before the revoking prune listed anything.
   */
  async guard<T>(write: () => Promise<T>, undo: (written: T) => Promise<void>): Promise<T> {
    await this.confirm();
    const written = await write();
    try {
      await this.confirm();
    } catch (err) {
      if (err instanceof LeaseLapsedError) await undo(written);
      throw err;
    }
    return written;
  }

  /**
   * Stops the heartbeat and removes the lease. Idempotent and safe from an abort path: every call
   * returns the same promise, which never rejects (a lease that could not be removed expires).
   */
  release(): Promise<void> {
    this.released ??= (async () => {
      clearInterval(this.timer);
      const wasHeld = this.state === 'held';
      this.state = 'released';
      this.repo.detachLease(this);
      // A heartbeat's write still under way would put the lease back after the delete, and it
      // would stand (and keep plans, or another prune, waiting) until it expired.
      await this.beating;
      // A revoked lease is the prune's to clean up, and a heartbeat may have written it back.
      if (wasHeld) await this.repo.storage.delete(leaseName(this.record.id)).catch(() => undefined);
    })();
    return this.released;
  }

  private lapse(): void {
    if (this.state === 'held') this.state = 'lapsed';
    clearInterval(this.timer);
  }

  private async beat(): Promise<void> {
    if (this.state !== 'held') return;
    try {
      // Never write back a lease a prune took away: the holder would not know it had lost it.
      await this.confirm();
      // Released meanwhile: release() removes the lease once this beat is over, so none is written.
      if (this.released !== undefined) return;
      await this.write({ ...this.record, heartbeat: new Date(this.clock.now()).toISOString() });
    } catch {
      // A lapse is sticky and reported by the next guard(); a failed renewal only brings expiry
      // closer, which at worst gets this lease revoked: a lapse, never a loss.
    }
  }

  private async write(record: LeaseRecord): Promise<void> {
    await this.repo.writeSealedObjectAs(leaseName(record.id), 'lease', Buffer.from(JSON.stringify(record)));
  }
}

/** A lease as the storage shows it: its record, when the storage last saw it written, whether it is revoked. */
export interface ObservedLease {
  readonly record: LeaseRecord;
  /** ms since the epoch by the storage's clock. */
  readonly modified: number;
  readonly revoked: boolean;
}

export interface LeaseObservation {
  readonly leases: readonly ObservedLease[];
  /** Revocation markers whose lease object is gone, with the storage time they were written. */
  readonly orphanRevocations: ReadonlyArray<{ readonly id: string; readonly modified: number }>;
  /** How long ago, by the storage's clock, the lease was last renewed. */
  ageOf(lease: ObservedLease): number;
  /** How long ago, by the storage's clock, a revocation marker was written. */
  ageOfRevocation(modified: number): number;
}

const LEASE_NAME = /^leases\/([0-9a-f]{32})(\.revoked)?$/;

/**
 * Every lease in the repository and the storage's present time, both by the storage's clock: no
 * two hosts' clocks are ever compared. Unreadable leases are skipped (not a holder of the key's).
 */
export async function observeLeases(repo: Repository): Promise<LeaseObservation> {
  const now = await storageNow(repo);
  const objects = new Map<string, number>();
  const revoked = new Map<string, number>();
  for await (const obj of repo.storage.list(LEASES_PREFIX)) {
    const match = LEASE_NAME.exec(obj.name);
    if (!match?.[1]) continue;
    (match[2] === undefined ? objects : revoked).set(match[1], obj.modified ?? now);
  }
  const leases: ObservedLease[] = [];
  for (const [id, modified] of objects) {
    const record = await readLease(repo, id);
    if (record) leases.push({ record, modified, revoked: revoked.has(id) });
  }
  return {
    leases,
    orphanRevocations: [...revoked].filter(([id]) => !objects.has(id)).map(([id, modified]) => ({ id, modified })),
    ageOf: (lease) => now - lease.modified,
    ageOfRevocation: (modified) => now - modified,
  };
}

async function readLease(repo: Repository, id: string): Promise<LeaseRecord | undefined> {
  try {
    const record = JSON.parse((await repo.readSealedObject(leaseName(id), 'lease')).toString('utf8')) as Partial<Omit<LeaseRecord, 'version'>> & { version?: unknown };
    if (record.version === 1 && record.id === id && typeof record.started === 'string' && typeof record.heartbeat === 'string') return record as LeaseRecord;
  } catch {
    // Deleted between list and get, or not ours.
  }
  return undefined;
}

/**
 * The storage's present time: the modification time of an object written for the purpose. The
 * probe's name is no lease's, so listings skip it.
 */
async function storageNow(repo: Repository): Promise<number> {
  const probe = `${LEASES_PREFIX}${randomBytes(16).toString('hex')}.clock`;
  await repo.storage.put(probe, Buffer.alloc(0));
  try {
    const { modified } = await repo.storage.stat(probe);
    if (modified === undefined) throw new ArcaError('ARCA_ERR_STORAGE_CLOCK', `Storage ${repo.storage.location} tells no modification times, which leases need.`);
    return modified;
  } finally {
    await repo.storage.delete(probe);
  }
}

/**
 * Takes lease `id` away from its holder: first the marker the holder checks before and after each
 * write, then the lease itself. The marker stays while the lease object exists (a stalled
 * heartbeat may write it back) and for REVOCATION_KEEP_MS after.
 */
export async function revokeLease(repo: Repository, id: string): Promise<void> {
  await repo.storage.put(revocationName(id), Buffer.alloc(0));
  await repo.storage.delete(leaseName(id));
}

/** How long a revocation outlives its lease: longer than any holder's stall that its own clocks would not also catch. */
export const REVOCATION_KEEP_MS = 7 * 24 * 3600_000;

/**
 * Revokes every lease (but `own`) that the storage has not seen renewed for `ttlMs`, re-removes
 * revoked leases that a stalled heartbeat wrote back, and drops old markers. Returns the leases
 * that still stand.
 */
export async function revokeExpired(repo: Repository, ttlMs: number, own: string | undefined): Promise<ObservedLease[]> {
  const observed = await observeLeases(repo);
  const standing: ObservedLease[] = [];
  for (const lease of observed.leases) {
    if (lease.record.id === own) standing.push(lease);
    else if (lease.revoked || observed.ageOf(lease) > ttlMs) await revokeLease(repo, lease.record.id);
    else standing.push(lease);
  }
  for (const { id, modified } of observed.orphanRevocations) {
    if (observed.ageOfRevocation(modified) > REVOCATION_KEEP_MS) await repo.storage.delete(revocationName(id));
  }
  return standing;
}

async function exists(repo: Repository, name: string): Promise<boolean> {
  try {
    await repo.storage.stat(name);
    return true;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return false;
    throw err;
  }
}
