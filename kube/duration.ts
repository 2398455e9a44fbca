// Go-style durations (`90s`, `1h30m`, `500ms`) as flags and CRD fields write them. No imports:
// restore-wait uses it too.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

export class DurationError extends Error {
  override readonly name = 'DurationError';
  readonly code = 'ARCA_BAD_DURATION';
}

/** Milliseconds in `text`, or a DurationError naming what was expected. */
export function parseDuration(text: string, what = 'duration'): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new DurationError(`The ${what} "${text}" is not a duration; write it like 30s, 15m or 1h30m.`);
  }
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * (UNIT_MS[unit ?? ''] ?? 0), 0);
}
