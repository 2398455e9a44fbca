import { UsageError } from '../errors.ts';

/**
 * A calendar duration as restic's `--keep-within` takes it: years, months, days and hours,
 * written like `1y2m3d4h` (any subset, any order; `m` is months, not minutes).
 */
export interface RetentionDuration {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
}

const UNITS = { y: 'years', m: 'months', d: 'days', h: 'hours' } as const;
type Unit = keyof typeof UNITS;
const isUnit = (c: string): c is Unit => Object.hasOwn(UNITS, c);

/**
 * Parses `1y2m3d4h`. Rejects what restic rejects (no number, no unit, unknown unit, negative
 * values) and, stricter than restic, a unit given twice (restic silently keeps the last).
 */
export function parseDuration(text: string): RetentionDuration {
  const s = text.trim();
  if (s === '') throw new UsageError('The duration is empty; write it like 1y2m3d4h (years, months, days, hours).');
  const d = { years: 0, months: 0, days: 0, hours: 0 };
  const seen = new Set<Unit>();
  const part = /(-?)(\d*)(.?)/y;
  while (part.lastIndex < s.length) {
    const m = part.exec(s);
    const [, minus = '', digits = '', unit = ''] = m ?? [];
    if (digits === '') throw new UsageError(`The duration "${text}" has no number where one is expected; write it like 1y2m3d4h.`);
    if (minus !== '') throw new UsageError(`The duration "${text}" is negative; a retention duration must not be.`);
    if (unit === '') throw new UsageError(`The duration "${text}" has no unit after ${digits}; use y, m, d or h.`);
    if (!isUnit(unit)) throw new UsageError(`The duration "${text}" has the unknown unit "${unit}"; use y (years), m (months), d (days) or h (hours).`);
    if (seen.has(unit)) throw new UsageError(`The duration "${text}" gives "${unit}" twice.`);
    seen.add(unit);
    const n = Number(digits);
    if (!Number.isSafeInteger(n)) throw new UsageError(`The duration "${text}" is too large.`);
    d[UNITS[unit]] = n;
  }
  return d;
}

/** restic's notation: the non-zero parts, e.g. `1y3d`; an all-zero duration is "". */
export function formatRetentionDuration(d: RetentionDuration): string {
  return (['y', 'm', 'd', 'h'] as const).map((u) => (d[UNITS[u]] !== 0 ? `${d[UNITS[u]]}${u}` : '')).join('');
}

export function isZeroDuration(d: RetentionDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/**
 * `from` minus `d`, computed on the UTC calendar as Go's AddDate does (restic): months that
 * overflow normalise forward, e.g. 31 March minus 1 month is 3 March (no 31 February).
 */
export function subtractDuration(from: Date, d: RetentionDuration): Date {
  const t = new Date(from.getTime());
  t.setUTCFullYear(from.getUTCFullYear() - d.years, from.getUTCMonth() - d.months, from.getUTCDate() - d.days);
  return new Date(t.getTime() - d.hours * 3_600_000);
}
