/**
 * What the lease and prune protocol takes from its surroundings, passed in rather than read from
 * globals: the writer's wall clock, and named points where a test can hold the process (a stalled
 * host, a suspended VM). The CLI builds them from its options; tests inject their own.
 */

/** A wall clock in milliseconds since the epoch. Only informational times come from it (docs/format.md §9). */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Places in a writer or a prune where a test may hold the process, named for what has just happened or is about to. */
export const PAUSE_POINTS = [
  /** A writer has loaded the index it will deduplicate against. */
  'index-loaded',
  /** A writer is about to write an index file. */
  'index-write',
  /** A writer is about to write a snapshot. */
  'snapshot-write',
  /** A writer has confirmed its lease and is about to store its snapshot (inside Lease.guard). */
  'snapshot-confirmed',
  /** A writer's snapshot is stored, and its lease not yet confirmed again. */
  'snapshot-landed',
  /** A prune holds its lease and has listed the plans. */
  'prune-plans-listed',
  /** A prune has listed the snapshots, index files and packs it marks from. */
  'prune-packs-listed',
  /** A prune has chosen its candidates and is about to write its draft plan. */
  'prune-marked',
  /** A prune has written its completed plan and is about to delete the draft. */
  'prune-plan-completed',
  /** `repair index` has read the pack headers and is about to write the index. */
  'repair-packs-read',
] as const;

export type PausePoint = (typeof PAUSE_POINTS)[number];

/** Called at every pause point; may block (a stall) or wait (a held process whose timers still run). */
export type PauseHook = (point: PausePoint) => void | Promise<void>;
