import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../repository/errors.ts';
import { formatRetentionDuration, parseDuration, subtractDuration } from '../../repository/maintenance/duration.ts';
import {
  applyPolicy, describeGroupKey, EmptyPolicyError, groupSnapshots, isoWeekBucket, parseGroupBy, tagValues,
  type PolicyDecision, type RetentionPolicy,
} from '../../repository/maintenance/retention.ts';
import type { StoredSnapshot } from '../../repository/snapshot/snapshot.ts';

// ---- synthetic snapshots

let seq = 0;

interface SnapOptions {
  readonly host?: string;
  readonly paths?: string[];
  readonly tags?: string[];
}

function snap(time: string | Date, o: SnapOptions = {}): StoredSnapshot {
  const iso = typeof time === 'string' ? new Date(time).toISOString() : time.toISOString();
  const id = createHash('sha256').update(`${iso}/${seq++}`).digest('hex');
  return {
    id,
    snapshot: {
      version: 1, time: iso, tree: '0'.repeat(64), paths: o.paths ?? ['/data'], hostname: o.host ?? 'h', username: 'u', tags: o.tags ?? [], program_version: 'test',
    },
  };
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One snapshot every `stepMs` from `from` (inclusive) to `to` (inclusive). */
function series(from: string, to: string, stepMs: number, o: SnapOptions = {}): StoredSnapshot[] {
  const out: StoredSnapshot[] = [];
  for (let t = Date.parse(from); t <= Date.parse(to); t += stepMs) out.push(snap(new Date(t), o));
  return out;
}

const NOW = new Date('2030-01-01T00:00:00Z');

/** Kept snapshots as "time → reasons", times shortened to what the tests write. */
function keptMap(decisions: readonly PolicyDecision[]): Record<string, string[]> {
  return Object.fromEntries(decisions.filter((d) => d.keep).map((d) => [short(d.snapshot.snapshot.time), d.reasons]));
}

function keptTimes(decisions: readonly PolicyDecision[]): string[] {
  return decisions.filter((d) => d.keep).map((d) => short(d.snapshot.snapshot.time));
}

/** "2024-01-31T12:00:00.000Z" → "2024-01-31T12:00". */
function short(iso: string): string {
  return iso.slice(0, 16);
}

const days = (from: number, to: number, month: string, hhmm = '12:00'): string[] => {
  const out: string[] = [];
  for (let d = to; d >= from; d--) out.push(`${month}-${String(d).padStart(2, '0')}T${hhmm}`);
  return out;
};

// ---- durations

describe('parseDuration', () => {
  it('reads restic notation in any order and writes it back', () => {
    expect(parseDuration('1y2m3d4h')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
    expect(parseDuration('4h1y')).toEqual({ years: 1, months: 0, days: 0, hours: 4 });
    expect(parseDuration(' 7d ')).toEqual({ years: 0, months: 0, days: 7, hours: 0 });
    expect(formatRetentionDuration(parseDuration('4h1y'))).toBe('1y4h');
    expect(formatRetentionDuration(parseDuration('1y2m3d4h'))).toBe('1y2m3d4h');
  });

  it('rejects malformed durations with a usage error', () => {
    for (const bad of ['', '7', 'd', '7w', '7d3', '-1d', '1d2d', '1.5d', '7 d']) {
      expect(() => parseDuration(bad), bad).toThrow(UsageError);
    }
  });

  it('subtracts on the UTC calendar like Go AddDate: month overflow normalises forward', () => {
    const at = (s: string): string => subtractDuration(new Date(s), parseDuration('1m')).toISOString();
    expect(at('2024-03-31T10:00:00Z')).toBe('2024-03-02T10:00:00.000Z'); // "31 Feb 2024" = 2 Mar (leap year)
    expect(at('2023-03-31T10:00:00Z')).toBe('2023-03-03T10:00:00.000Z');
    expect(subtractDuration(new Date('2024-02-29T00:00:00Z'), parseDuration('1y')).toISOString()).toBe('2023-03-01T00:00:00.000Z');
    expect(subtractDuration(new Date('2024-01-01T02:00:00Z'), parseDuration('1d3h')).toISOString()).toBe('2023-12-30T23:00:00.000Z');
  });
});

// ---- buckets

describe('ISO weeks', () => {
  it('numbers weeks and week-years as ISO 8601 does, in UTC', () => {
    const w = (s: string): number => isoWeekBucket(new Date(s));
    expect(w('2021-01-03T23:59:59Z')).toBe(202053); // Sunday: still 2020's week 53
    expect(w('2021-01-04T00:00:00Z')).toBe(202101); // Monday
    expect(w('2024-01-01T00:00:00Z')).toBe(202401);
    expect(w('2024-12-29T12:00:00Z')).toBe(202452);
    expect(w('2024-12-30T00:00:00Z')).toBe(202501); // Monday of 2025's first week
    expect(w('2026-01-01T00:00:00Z')).toBe(202601); // Thursday
    expect(w('2027-01-01T00:00:00Z')).toBe(202653); // Friday: 2026 has 53 weeks
    expect(w('2027-01-04T00:00:00Z')).toBe(202701);
  });
});

// ---- the policy

describe('applyPolicy', () => {
  const january = series('2024-01-01T12:00:00Z', '2024-01-31T12:00:00Z', DAY);

  it('keep-daily 7 over a month of daily snapshots keeps the 7 newest days', () => {
    const result = applyPolicy(january, { daily: 7 }, NOW);
    expect(result).toHaveLength(31);
    expect(keptTimes(result)).toEqual(days(25, 31, '2024-01'));
    expect(result.filter((d) => d.keep).every((d) => d.reasons.join() === 'daily snapshot')).toBe(true);
    expect(result.filter((d) => !d.keep).every((d) => d.reasons.length === 0)).toBe(true);
  });

  it('keep-daily keeps the newest snapshot of each day', () => {
    const twice = [...january, ...series('2024-01-01T18:00:00Z', '2024-01-31T18:00:00Z', DAY)];
    expect(keptTimes(applyPolicy(twice, { daily: 3 }, NOW))).toEqual(days(29, 31, '2024-01', '18:00'));
  });

  it('returns every snapshot newest first whatever the input order, without touching the input', () => {
    const shuffled = [january[5], january[30], january[0], january[17]].filter((s) => s !== undefined);
    const copy = [...shuffled];
    const result = applyPolicy(shuffled, { last: 1 }, NOW);
    expect(result.map((d) => short(d.snapshot.snapshot.time))).toEqual(['2024-01-31T12:00', '2024-01-18T12:00', '2024-01-06T12:00', '2024-01-01T12:00']);
    expect(shuffled).toEqual(copy);
  });

  it('keep-last and keep-daily reasons combine', () => {
    const result = applyPolicy(january.slice(-10), { last: 3, daily: 2 }, NOW);
    expect(keptMap(result)).toEqual({
      '2024-01-31T12:00': ['last snapshot', 'daily snapshot'],
      '2024-01-30T12:00': ['last snapshot', 'daily snapshot'],
      '2024-01-29T12:00': ['last snapshot'],
    });
  });

  it('keep-hourly over three days of hourly snapshots keeps the newest of the last N hours', () => {
    const hourly = [...series('2024-03-01T00:05:00Z', '2024-03-03T23:05:00Z', HOUR), ...series('2024-03-01T00:35:00Z', '2024-03-03T23:35:00Z', HOUR)];
    const result = applyPolicy(hourly, { hourly: 30 }, NOW);
    const kept = keptTimes(result);
    expect(kept).toHaveLength(30);
    expect(kept[0]).toBe('2024-03-03T23:35');
    expect(kept[29]).toBe('2024-03-02T18:35');
    expect(kept.every((t) => t.endsWith(':35'))).toBe(true);
  });

  it('keep-weekly keeps the newest snapshot of each ISO week (weeks end on Sunday)', () => {
    // January 2024 starts on a Monday: weeks end on the 7th, 14th, 21st and 28th.
    expect(keptTimes(applyPolicy(january, { weekly: 4 }, NOW))).toEqual(['2024-01-31T12:00', '2024-01-28T12:00', '2024-01-21T12:00', '2024-01-14T12:00']);
  });

  it('keep-monthly picks the newest snapshot of each month', () => {
    const daily = series('2024-01-15T03:00:00Z', '2024-04-10T03:00:00Z', DAY);
    expect(keptMap(applyPolicy(daily, { monthly: 3 }, NOW))).toEqual({
      '2024-04-10T03:00': ['monthly snapshot'],
      '2024-03-31T03:00': ['monthly snapshot'],
      '2024-02-29T03:00': ['monthly snapshot'],
    });
  });

  it('keeps the oldest snapshot too when a count is left over (restic 0.17+)', () => {
    const twoMonths = series('2024-01-01T03:00:00Z', '2024-02-29T03:00:00Z', DAY);
    expect(keptMap(applyPolicy(twoMonths, { monthly: 12 }, NOW))).toEqual({
      '2024-02-29T03:00': ['monthly snapshot'],
      '2024-01-31T03:00': ['monthly snapshot'],
      '2024-01-01T03:00': ['oldest monthly snapshot'],
    });
    // Counts used up exactly: no extra snapshot.
    expect(keptTimes(applyPolicy(twoMonths, { monthly: 2 }, NOW))).toEqual(['2024-02-29T03:00', '2024-01-31T03:00']);
  });

  it('keep-yearly over several years', () => {
    const monthly: StoredSnapshot[] = [];
    for (let y = 2019; y <= 2024; y++) for (let m = 1; m <= 12; m++) monthly.push(snap(`${y}-${String(m).padStart(2, '0')}-10T00:00:00Z`));
    expect(keptTimes(applyPolicy(monthly, { yearly: 3 }, NOW))).toEqual(['2024-12-10T00:00', '2023-12-10T00:00', '2022-12-10T00:00']);
    expect(keptTimes(applyPolicy(monthly, { yearly: 6 }, NOW))).toHaveLength(6);
  });

  it('applies hourly, daily, weekly, monthly and yearly together over years of history', () => {
    const history = [
      ...[2019, 2020, 2021, 2022, 2023].map((y) => snap(`${y}-01-15T03:00:00Z`)),
      ...series('2024-01-01T03:00:00Z', '2024-02-29T03:00:00Z', DAY), // daily for two months
      ...series('2024-03-01T00:00:00Z', '2024-03-03T23:00:00Z', HOUR), // hourly for three days (Fri–Sun, ISO week 9)
    ];
    const result = applyPolicy(history, { hourly: 5, daily: 3, weekly: 2, monthly: 3, yearly: 3 }, NOW);
    expect(keptMap(result)).toEqual({
      '2024-03-03T23:00': ['hourly snapshot', 'daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot'],
      '2024-03-03T22:00': ['hourly snapshot'],
      '2024-03-03T21:00': ['hourly snapshot'],
      '2024-03-03T20:00': ['hourly snapshot'],
      '2024-03-03T19:00': ['hourly snapshot'],
      '2024-03-02T23:00': ['daily snapshot'],
      '2024-03-01T23:00': ['daily snapshot'],
      '2024-02-29T03:00': ['monthly snapshot'],
      '2024-02-25T03:00': ['weekly snapshot'], // Sunday of ISO week 8
      '2024-01-31T03:00': ['monthly snapshot'],
      '2023-01-15T03:00': ['yearly snapshot'],
      '2022-01-15T03:00': ['yearly snapshot'],
    });
    expect(result.filter((d) => !d.keep)).toHaveLength(history.length - 12);
  });

  it('treats -1 as unlimited', () => {
    const twice = [...january.slice(-10), ...series('2024-01-22T18:00:00Z', '2024-01-31T18:00:00Z', DAY)];
    expect(applyPolicy(twice, { last: -1 }, NOW).every((d) => d.keep)).toBe(true);
    const daily = keptMap(applyPolicy(twice, { daily: -1 }, NOW));
    expect(Object.keys(daily)).toEqual([...days(22, 31, '2024-01', '18:00'), '2024-01-22T12:00']);
    expect(daily['2024-01-22T12:00']).toEqual(['oldest daily snapshot']);
  });

  it('keep-within counts back from the newest snapshot, not from now', () => {
    const result = applyPolicy(january, { within: parseDuration('7d') }, NOW);
    // Newest is 31 Jan 12:00; 24 Jan 12:00 is exactly 7 days before and not "within".
    expect(keptMap(result)).toEqual(Object.fromEntries(days(25, 31, '2024-01').map((t) => [t, ['within 7d']])));
    expect(keptTimes(applyPolicy(january, { within: parseDuration('2d12h') }, NOW))).toEqual(days(29, 31, '2024-01'));
  });

  it('keep-within ignores snapshots dated after now when finding the newest', () => {
    const future = snap('2031-06-01T00:00:00Z');
    const result = applyPolicy([...january, future], { within: parseDuration('3d') }, NOW);
    expect(keptTimes(result)).toEqual(['2031-06-01T00:00', ...days(29, 31, '2024-01')]);
    // Every snapshot in the future: all are within (restic).
    expect(applyPolicy(january, { within: parseDuration('1d') }, new Date('2000-01-01T00:00:00Z')).every((d) => d.keep)).toBe(true);
  });

  it('keep-within in months and years uses the calendar', () => {
    const list = ['2024-03-31', '2024-03-03', '2024-03-02', '2024-02-29', '2023-04-01', '2023-03-31', '2023-03-30'].map((d) => snap(`${d}T00:00:00Z`));
    // 31 March minus one month is "31 February" = 2 March (2024 is a leap year); strictly after it counts.
    expect(keptTimes(applyPolicy(list, { within: parseDuration('1m') }, NOW))).toEqual(['2024-03-31T00:00', '2024-03-03T00:00']);
    expect(keptTimes(applyPolicy(list, { within: parseDuration('1y') }, NOW)).at(-1)).toBe('2023-04-01T00:00');
    expect(keptTimes(applyPolicy(list, { within: parseDuration('1y1d') }, NOW)).at(-1)).toBe('2023-03-31T00:00');
  });

  it('keep-tag keeps snapshots with the tag, and a comma list needs all its tags', () => {
    const list = [
      snap('2024-01-05T00:00:00Z', { tags: ['a'] }),
      snap('2024-01-04T00:00:00Z', { tags: ['a', 'b'] }),
      snap('2024-01-03T00:00:00Z', { tags: ['b'] }),
      snap('2024-01-02T00:00:00Z', { tags: ['keep'] }),
      snap('2024-01-01T00:00:00Z'),
    ];
    expect(keptMap(applyPolicy(list, { tags: [['a', 'b'], ['keep']] }, NOW))).toEqual({
      '2024-01-04T00:00': ['has tags a,b'],
      '2024-01-02T00:00': ['has tag keep'],
    });
    expect(keptMap(applyPolicy(list, { tags: [['b']], last: 1 }, NOW))).toEqual({
      '2024-01-05T00:00': ['last snapshot'],
      '2024-01-04T00:00': ['has tag b'],
      '2024-01-03T00:00': ['has tag b'],
    });
  });

  it('orders reasons as restic does: tags, within, then the counts', () => {
    const list = [snap('2024-01-02T00:00:00Z', { tags: ['x'] }), snap('2024-01-01T00:00:00Z')];
    expect(applyPolicy(list, { last: 1, daily: 1, within: parseDuration('1h'), tags: [['x']] }, NOW)[0]?.reasons)
      .toEqual(['has tag x', 'within 1h', 'last snapshot', 'daily snapshot']);
  });

  it('refuses an empty policy, and invalid counts', () => {
    for (const empty of [{}, { last: 0, daily: 0 }, { within: parseDuration('0d') }, { tags: [] }] satisfies RetentionPolicy[]) {
      expect(() => applyPolicy(january, empty, NOW)).toThrow(EmptyPolicyError);
    }
    expect(() => applyPolicy([], {}, NOW)).toThrow(EmptyPolicyError);
    try {
      applyPolicy(january, {}, NOW);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).code).toBe('ARCA_ERR_USAGE');
      // In the repository's terms: the CLI (forget) names its --keep-* options itself.
      expect((err as UsageError).message).toMatch(/keeps nothing/);
    }
    expect(() => applyPolicy(january, { daily: -2 }, NOW)).toThrow(/"daily"/);
    expect(() => applyPolicy(january, { last: 1.5 }, NOW)).toThrow(UsageError);
    expect(() => applyPolicy(january, { tags: [['']] }, NOW)).toThrow(UsageError);
    expect(applyPolicy([], { last: 1 }, NOW)).toEqual([]);
  });

  it('agrees with a straightforward reference over random histories and policies', () => {
    let state = 12345;
    const random = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const start = Date.parse('2021-06-01T00:00:00Z');
    const bucketsOf = {
      hourly: (t: Date) => t.toISOString().slice(0, 13),
      daily: (t: Date) => t.toISOString().slice(0, 10),
      weekly: (t: Date) => String(isoWeekBucket(t)),
      monthly: (t: Date) => t.toISOString().slice(0, 7),
      yearly: (t: Date) => t.toISOString().slice(0, 4),
    };
    for (let round = 0; round < 40; round++) {
      const spread = [3 * DAY, 90 * DAY, 3 * 365 * DAY][round % 3] ?? DAY;
      const list = Array.from({ length: 1 + Math.floor(random() * 200) }, () => snap(new Date(start + Math.floor(random() * spread / 60_000) * 60_000)));
      const pick = (): number | undefined => {
        const r = random();
        return r < 0.4 ? undefined : r < 0.5 ? -1 : Math.floor(random() * 12) + 1;
      };
      const policy = { last: pick(), hourly: pick(), daily: pick(), weekly: pick(), monthly: pick(), yearly: pick() };
      if (Object.values(policy).every((v) => v === undefined)) policy.daily = 2;

      // Reference: per count, the newest snapshot of each of the first N distinct buckets, plus
      // the oldest snapshot when fewer than N buckets exist (or N is unlimited).
      const sorted = [...list].sort((a, b) => Date.parse(b.snapshot.time) - Date.parse(a.snapshot.time) || a.id.localeCompare(b.id));
      const expected = new Map<string, string[]>();
      const add = (id: string, reason: string): void => { expected.set(id, [...(expected.get(id) ?? []), reason]); };
      const oldest = sorted.at(-1)?.id ?? '';
      for (const [name, n] of Object.entries(policy)) {
        if (n === undefined) continue;
        const bucketOf = name === 'last' ? (_t: Date, i: number) => String(i) : bucketsOf[name as keyof typeof bucketsOf];
        const firsts = new Map<string, string>();
        sorted.forEach((s, i) => { const b = bucketOf(new Date(s.snapshot.time), i); if (!firsts.has(b)) firsts.set(b, s.id); });
        const keepers = [...firsts.values()].slice(0, n === -1 ? undefined : n);
        const reason = name === 'last' ? 'last snapshot' : `${name} snapshot`;
        for (const id of keepers) add(id, reason);
        if (!keepers.includes(oldest) && (n === -1 || firsts.size < n)) add(oldest, `oldest ${reason}`);
      }
      const got = new Map(applyPolicy(list, policy, NOW).filter((d) => d.keep).map((d) => [d.snapshot.id, d.reasons]));
      expect(got, JSON.stringify(policy)).toEqual(expected);
    }
  });
});

// ---- grouping

describe('groups', () => {
  it('parses --group-by lists', () => {
    expect(parseGroupBy('host,paths')).toEqual({ host: true, paths: true, tags: false, tagKeys: [] });
    expect(parseGroupBy('')).toEqual({ host: false, paths: false, tags: false, tagKeys: [] });
    expect(parseGroupBy('host,tag:namespace,tag:pod,tag:volume')).toEqual({ host: true, paths: false, tags: false, tagKeys: ['namespace', 'pod', 'volume'] });
    expect(parseGroupBy('tags, path')).toEqual({ host: false, paths: true, tags: true, tagKeys: [] });
    for (const bad of ['hosts', 'tag:', 'tag:a=b', 'time']) expect(() => parseGroupBy(bad), bad).toThrow(UsageError);
  });

  it('groups by host and paths by default, paths order-insensitive', () => {
    const list = [
      snap('2024-01-01T00:00:00Z', { host: 'a', paths: ['/x', '/y'] }),
      snap('2024-01-02T00:00:00Z', { host: 'a', paths: ['/y', '/x'] }),
      snap('2024-01-03T00:00:00Z', { host: 'a', paths: ['/x'] }),
      snap('2024-01-04T00:00:00Z', { host: 'b', paths: ['/x'] }),
    ];
    const groups = groupSnapshots(list, parseGroupBy('host,paths'));
    expect(groups.map((g) => [describeGroupKey(g.key), g.snapshots.length])).toEqual([
      ['host a, paths /x', 1], ['host a, paths /x, /y', 2], ['host b, paths /x', 1],
    ]);
    expect(groups[1]?.snapshots.map((s) => short(s.snapshot.time))).toEqual(['2024-01-02T00:00', '2024-01-01T00:00']);
    expect(groupSnapshots(list, parseGroupBy(''))).toHaveLength(1);
    expect(describeGroupKey(groupSnapshots(list, parseGroupBy(''))[0]?.key ?? {})).toBe('all snapshots');
  });

  it('applies the policy to each group independently', () => {
    const list = [
      ...series('2024-01-01T00:00:00Z', '2024-01-10T00:00:00Z', DAY, { host: 'a' }),
      ...series('2023-05-01T00:00:00Z', '2023-05-05T00:00:00Z', DAY, { host: 'b' }),
    ];
    const kept = groupSnapshots(list, parseGroupBy('host')).map((g) => keptTimes(applyPolicy(g.snapshots, { last: 2, within: parseDuration('3d') }, NOW)));
    // Host b's snapshots are far older than host a's, yet "within" counts from b's own newest.
    expect(kept).toEqual([
      ['2024-01-10T00:00', '2024-01-09T00:00', '2024-01-08T00:00'],
      ['2023-05-05T00:00', '2023-05-04T00:00', '2023-05-03T00:00'],
    ]);
  });

  it('groups by the values of key=value tags', () => {
    const pvc = (time: string, ns: string, pod: string, extra: string[] = []): StoredSnapshot =>
      snap(time, { host: 'node-1', tags: [`namespace=${ns}`, `pod=${pod}`, 'volume=data', ...extra] });
    const list = [
      pvc('2024-01-01T00:00:00Z', 'wp', 'db-0'),
      pvc('2024-01-02T00:00:00Z', 'wp', 'db-0', ['manual']),
      pvc('2024-01-03T00:00:00Z', 'wp', 'web-0'),
      pvc('2024-01-04T00:00:00Z', 'shop', 'db-0'),
      snap('2024-01-05T00:00:00Z', { host: 'node-1', tags: ['volume=data'] }),
    ];
    const groups = groupSnapshots(list, parseGroupBy('host,tag:namespace,tag:pod,tag:volume'));
    expect(groups.map((g) => [describeGroupKey(g.key), g.snapshots.length])).toEqual([
      ['host node-1, namespace (unset), pod (unset), volume=data', 1],
      ['host node-1, namespace=shop, pod=db-0, volume=data', 1],
      ['host node-1, namespace=wp, pod=db-0, volume=data', 2], // the extra tag does not split the group
      ['host node-1, namespace=wp, pod=web-0, volume=data', 1],
    ]);
    expect(groups[2]?.key).toEqual({ host: 'node-1', tagValues: { namespace: ['wp'], pod: ['db-0'], volume: ['data'] } });
    const kept = groups.flatMap((g) => keptTimes(applyPolicy(g.snapshots, { last: 1 }, NOW)));
    expect(kept.sort()).toEqual(['2024-01-02T00:00', '2024-01-03T00:00', '2024-01-04T00:00', '2024-01-05T00:00']);
    // Grouping by whole tag lists does split on the extra tag.
    expect(groupSnapshots(list, parseGroupBy('tags'))).toHaveLength(5);
  });

  it('reads tag values split at the first "="', () => {
    expect(tagValues(['a=1', 'a=2=3', 'b=4', 'a', 'a='], 'a')).toEqual(['', '1', '2=3']);
  });
});
