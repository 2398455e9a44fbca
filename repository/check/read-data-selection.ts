import { UsageError } from '../errors.ts';
import type { ReadDataSelection } from './checker.ts';

/** `N%` (that share of the packs, at random) or `N/M` (part N of M), as `check --read-data-subset` and BackupRepository's checkReadDataSubset take it. */
export function parseReadDataSubset(text: string): ReadDataSelection {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent) {
    const value = Number(percent[1]);
    if (value <= 0 || value > 100) throw new UsageError('A read-data subset N% takes N in (0, 100].');
    return { kind: 'percent', percent: value };
  }
  const part = /^(\d+)\/(\d+)$/.exec(text);
  if (part) {
    const n = Number(part[1]);
    const of = Number(part[2]);
    if (of < 1 || n < 1 || n > of) throw new UsageError('A read-data subset N/M takes 1 <= N <= M.');
    return { kind: 'part', n, of };
  }
  throw new UsageError(`A read-data subset is N% or N/M, not "${text}".`);
}
