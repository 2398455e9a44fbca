/**
 * Retention policies for `arca forget`, with restic's semantics (restic 0.17+,
 * internal/restic/snapshot_policy.go), and the grouping the policy is applied within.
 *
 * - Snapshots are walked newest first. Each `--keep-*` count N keeps the newest snapshot of each
 *   of the last N buckets that have snapshots; N = -1 keeps one per bucket without limit.
 * - Buckets are calendar hours, days, ISO weeks (Monday to Sunday, ISO week-numbering year),
 *   months and years, all in UTC. (restic uses each snapshot's recorded time zone; Arca records
 *   times in UTC, so buckets are UTC buckets whatever the machine's zone.)
 * - As restic 0.17+ does: when a count is not used up by the time the walk reaches the oldest
 *   snapshot of the group, that oldest snapshot is kept too (reason "oldest daily snapshot"
 *   when its bucket already had a newer keeper), to keep the longest history the counts allow.
 * - `within` keeps snapshots strictly newer than (newest snapshot − duration), measured from
 *   the newest snapshot that is not in the future relative to `now`, not from `now`: a
 *   repository whose backups stopped keeps its last ones. If every snapshot is in the future,
 *   all of them are within (restic's behaviour).
 * - `tags`: a snapshot is kept when it has every tag of at least one of the lists.
 * - A policy that sets nothing is rejected (restic 0.17+ refuses it too): it would remove all.
 */
import { UsageError } from '../errors.ts';
import { newestFirst, type StoredSnapshot } from '../snapshot/snapshot.ts';
import { formatRetentionDuration, isZeroDuration, subtractDuration, type RetentionDuration } from './duration.ts';

export interface RetentionPolicy {
  /** Keep the N newest snapshots. */
  readonly last?: number | undefined;
  readonly hourly?: number | undefined;
  readonly daily?: number | undefined;
  readonly weekly?: number | undefined;
  readonly monthly?: number | undefined;
  readonly yearly?: number | undefined;
  /** Keep snapshots newer than this before the newest snapshot. */
  readonly within?: RetentionDuration | undefined;
  /** Keep snapshots that have all tags of at least one list (restic's `--keep-tag a,b`). */
  readonly tags?: readonly (readonly string[])[] | undefined;
}

export interface PolicyDecision {
  readonly snapshot: StoredSnapshot;
  readonly keep: boolean;
  /** Why a kept snapshot is kept, e.g. "last snapshot", "daily snapshot", "within 7d", "has tag x". Empty when removed. */
  readonly reasons: string[];
}

/** N = -1: no limit. */
export const UNLIMITED = -1;

const COUNTS = [
  ['last', 'last snapshot'],
  ['hourly', 'hourly snapshot'],
  ['daily', 'daily snapshot'],
  ['weekly', 'weekly snapshot'],
  ['monthly', 'monthly snapshot'],
  ['yearly', 'yearly snapshot'],
] as const;

type CountKey = (typeof COUNTS)[number][0];

/** The bucket a snapshot time falls in, per count; `nr` is its position (newest first). */
const BUCKETS: Record<CountKey, (t: Date, nr: number) => number> = {
  last: (_t, nr) => nr,
  hourly: (t) => ((t.getUTCFullYear() * 100 + t.getUTCMonth() + 1) * 100 + t.getUTCDate()) * 100 + t.getUTCHours(),
  daily: (t) => (t.getUTCFullYear() * 100 + t.getUTCMonth() + 1) * 100 + t.getUTCDate(),
  weekly: isoWeekBucket,
  monthly: (t) => t.getUTCFullYear() * 100 + t.getUTCMonth() + 1,
  yearly: (t) => t.getUTCFullYear(),
};

/** ISO 8601 week of `t` in UTC as YYYYWW, where YYYY is the ISO week-numbering year. */
export function isoWeekBucket(t: Date): number {
  const day = new Date(t.getTime());
  day.setUTCHours(0, 0, 0, 0);
  const weekday = day.getUTCDay() === 0 ? 7 : day.getUTCDay();
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of the same week decides the year
  const year = day.getUTCFullYear();
  const jan1 = new Date(day.getTime());
  jan1.setUTCMonth(0, 1);
  const week = Math.floor((day.getTime() - jan1.getTime()) / 86_400_000 / 7) + 1;
  return year * 100 + week;
}

/** Throws a UsageError unless every count is an integer ≥ -1 and every tag list is usable. */
export function validatePolicy(policy: RetentionPolicy): void {
  for (const [key] of COUNTS) {
    const n = policy[key];
    if (n === undefined) continue;
    if (!Number.isSafeInteger(n) || n < UNLIMITED) {
      throw new UsageError(`The retention count "${key}" must be a whole number of snapshots, or -1 (unlimited); got ${n}.`);
    }
  }
  const w = policy.within;
  if (w && [w.years, w.months, w.days, w.hours].some((v) => !Number.isSafeInteger(v) || v < 0)) {
    throw new UsageError('The retention duration must not contain negative or fractional values.');
  }
  for (const list of policy.tags ?? []) {
    if (list.length === 0 || list.some((t) => t === '')) throw new UsageError('A retention tag list needs a tag (or several), not an empty one.');
  }
}

/** True when the policy sets nothing (every count 0 or unset, no duration, no tags). */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return COUNTS.every(([key]) => (policy[key] ?? 0) === 0)
    && (policy.within === undefined || isZeroDuration(policy.within))
    && (policy.tags ?? []).length === 0;
}

export class EmptyPolicyError extends UsageError {
  constructor() {
    super('The retention policy keeps nothing, which would remove every snapshot.');
  }
}

/** How a tag list reads in reasons: "has tag x", "has tags a,b". */
function tagReason(list: readonly string[]): string {
  return list.length === 1 ? `has tag ${list.join('')}` : `has tags ${list.join(',')}`;
}

/**
 * Decides for every snapshot whether `policy` keeps it, and why. The result is sorted newest
 * first (ties by ID). `now` only matters for `within`: snapshots dated after `now` do not count
 * as the newest snapshot the duration is measured from. Throws EmptyPolicyError for an empty
 * policy and UsageError for invalid counts.
 */
export function applyPolicy(snapshots: StoredSnapshot[], policy: RetentionPolicy, now: Date): PolicyDecision[] {
  validatePolicy(policy);
  if (isEmptyPolicy(policy)) throw new EmptyPolicyError();
  const list = [...snapshots].sort(newestFirst);
  const times = list.map((s) => new Date(Date.parse(s.snapshot.time)));

  let withinAfter: number | undefined;
  const within = policy.within;
  if (within !== undefined && !isZeroDuration(within)) {
    const past = times.map((t) => t.getTime()).filter((t) => t <= now.getTime());
    withinAfter = past.length > 0 ? subtractDuration(new Date(Math.max(...past)), within).getTime() : -Infinity;
  }
  const withinReason = within !== undefined ? `within ${formatRetentionDuration(within)}` : '';

  const counters = COUNTS.map(([key, reason]) => ({ key, reason, left: policy[key] ?? 0, lastBucket: undefined as number | undefined }));

  return list.map((snapshot, nr) => {
    const time = times[nr] ?? new Date(NaN);
    const reasons: string[] = [];
    for (const tags of policy.tags ?? []) {
      if (tags.every((t) => snapshot.snapshot.tags.includes(t))) reasons.push(tagReason(tags));
    }
    if (withinAfter !== undefined && time.getTime() > withinAfter) reasons.push(withinReason);
    const oldest = nr === list.length - 1;
    for (const c of counters) {
      if (c.left === 0) continue;
      const bucket = BUCKETS[c.key](time, nr);
      if (bucket === c.lastBucket && !oldest) continue;
      reasons.push(bucket === c.lastBucket ? `oldest ${c.reason}` : c.reason);
      c.lastBucket = bucket;
      if (c.left > 0) c.left--;
    }
    return { snapshot, keep: reasons.length > 0, reasons };
  });
}

/** restic-like one-line description, e.g. "keep 2 latest, 7 daily snapshots and all snapshots within 1y of the newest". */
export function describePolicy(policy: RetentionPolicy): string {
  const names: Record<CountKey, string> = { last: 'latest', hourly: 'hourly', daily: 'daily', weekly: 'weekly', monthly: 'monthly', yearly: 'yearly' };
  const counts = COUNTS.flatMap(([key]) => {
    const n = policy[key] ?? 0;
    return n === 0 ? [] : [n === UNLIMITED ? `all ${names[key]}` : `${n} ${names[key]}`];
  });
  const parts: string[] = [];
  if (counts.length > 0) parts.push(`${counts.join(', ')} snapshots`);
  for (const tags of policy.tags ?? []) parts.push(`snapshots with ${tags.length === 1 ? 'tag' : 'tags'} ${tags.join(',')}`);
  if (policy.within && !isZeroDuration(policy.within)) parts.push(`snapshots within ${formatRetentionDuration(policy.within)} of the newest`);
  return `keep ${parts.join(' and ')}`;
}

// ---- grouping

/**
 * What snapshots are grouped by before the policy is applied to each group. `tagKeys` groups
 * by the values of `key=value` tags (e.g. namespace=wp, pod=db-0): `tag:namespace` in --group-by.
 */
export interface GroupBy {
  readonly host: boolean;
  readonly paths: boolean;
  readonly tags: boolean;
  readonly tagKeys: readonly string[];
}

export const DEFAULT_GROUP_BY: GroupBy = { host: true, paths: true, tags: false, tagKeys: [] };

/**
 * Parses a --group-by list: comma-separated `host`, `paths`, `tags` and `tag:KEY`; the empty
 * string means no grouping (one group). `path` and `tag` are accepted as restic's spellings.
 */
export function parseGroupBy(spec: string): GroupBy {
  let host = false;
  let paths = false;
  let tags = false;
  const tagKeys: string[] = [];
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    if (item === 'host') host = true;
    else if (item === 'paths' || item === 'path') paths = true;
    else if (item === 'tags' || item === 'tag') tags = true;
    else if (item.startsWith('tag:') && item.length > 4 && !item.includes('=')) {
      const key = item.slice(4);
      if (!tagKeys.includes(key)) tagKeys.push(key);
    } else {
      throw new UsageError(`Snapshots cannot be grouped by "${item}"; use a comma list of host, paths, tags and tag:KEY.`);
    }
  }
  return { host, paths, tags, tagKeys };
}

/** The values a group shares; a field is absent when the grouping does not use it. */
export interface GroupKey {
  readonly host?: string;
  readonly paths?: readonly string[];
  readonly tags?: readonly string[];
  /** Per grouped tag key, the sorted values of the snapshot's `key=value` tags ([] when it has none). */
  readonly tagValues?: Readonly<Record<string, readonly string[]>>;
}

export interface SnapshotGroup {
  readonly key: GroupKey;
  /** Newest first. */
  readonly snapshots: StoredSnapshot[];
}

/** The values of the `key=value` tags with this key (split at the first "="), sorted. */
export function tagValues(tags: readonly string[], key: string): string[] {
  const prefix = `${key}=`;
  return [...new Set(tags.filter((t) => t.startsWith(prefix)).map((t) => t.slice(prefix.length)))].sort();
}

export function groupKeyOf(snapshot: StoredSnapshot, by: GroupBy): GroupKey {
  const s = snapshot.snapshot;
  const key: { -readonly [K in keyof GroupKey]: GroupKey[K] } = {};
  if (by.host) key.host = s.hostname;
  if (by.paths) key.paths = [...s.paths].sort();
  if (by.tags) key.tags = [...new Set(s.tags)].sort();
  if (by.tagKeys.length > 0) key.tagValues = Object.fromEntries(by.tagKeys.map((k) => [k, tagValues(s.tags, k)]));
  return key;
}

/** Splits snapshots into groups with equal keys; groups sorted by key, snapshots newest first. */
export function groupSnapshots(snapshots: readonly StoredSnapshot[], by: GroupBy): SnapshotGroup[] {
  const groups = new Map<string, SnapshotGroup>();
  for (const snapshot of snapshots) {
    const key = groupKeyOf(snapshot, by);
    const id = JSON.stringify(key);
    const group = groups.get(id);
    if (group) group.snapshots.push(snapshot);
    else groups.set(id, { key, snapshots: [snapshot] });
  }
  return [...groups.values()]
    .map((g) => ({ order: sortKeyOf(g.key), group: g }))
    .sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))
    .map(({ group }) => ({ key: group.key, snapshots: group.snapshots.sort(newestFirst) }));
}

/** Orders groups field by field, value by value (a missing value first). */
function sortKeyOf(key: GroupKey): string {
  const fields = [[key.host ?? ''], key.paths ?? [], key.tags ?? [], ...Object.values(key.tagValues ?? {})];
  return fields.map((values) => values.join('\u0001')).join('\u0000');
}

/** "host h, paths /a, /b, tags x, namespace=wp, pod=db-0"; "all snapshots" for no grouping. */
export function describeGroupKey(key: GroupKey): string {
  const parts: string[] = [];
  if (key.host !== undefined) parts.push(`host ${key.host}`);
  if (key.paths) parts.push(`paths ${key.paths.join(', ') || '(none)'}`);
  if (key.tags) parts.push(`tags ${key.tags.join(',') || '(none)'}`);
  for (const [k, values] of Object.entries(key.tagValues ?? {})) {
    parts.push(values.length > 0 ? `${k}=${values.join(',')}` : `${k} (unset)`);
  }
  return parts.length > 0 ? parts.join(', ') : 'all snapshots';
}
