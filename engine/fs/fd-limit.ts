import { readFileSync } from 'node:fs';

/** What Linux gives when /proc/self/limits cannot be read: the usual soft default. */
const DEFAULT_LIMIT = 1024;
/** Descriptors kept for everything else: the runtime, sockets to storage, caches, pack files. */
const RESERVED = 128;

/**
 * The soft RLIMIT_NOFILE of this process, from /proc/self/limits (Node raises the soft limit to
 * the hard one at start-up, so this is what the process really has).
 */
export function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isInteger(n) && n > 0 ? n : DEFAULT_LIMIT;
  } catch {
    return DEFAULT_LIMIT;
  }
}

/**
 * Descriptors that one kind of work may hold open at once: `share` of what the limit leaves
 * after RESERVED, never more than `cap` (more buys no speed) nor less than `floor`.
 */
export function descriptorBudget(share: number, cap: number, floor = 8): number {
  return Math.max(floor, Math.min(cap, Math.floor((openFileLimit() - RESERVED) * share)));
}
