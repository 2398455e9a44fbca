import { Checker, type ReadDataSelection } from '../../repository/check/checker.ts';
import { describeNotice, describeProblem } from '../../repository/check/report.ts';
import { UsageError } from '../../repository/errors.ts';
import { flag, str, type Command } from '../command.ts';
import { openRepository } from '../context.ts';

function parseSubset(text: string): ReadDataSelection {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent) {
    const value = Number(percent[1]);
    if (value <= 0 || value > 100) throw new UsageError('--read-data-subset N% takes N in (0, 100].');
    return { kind: 'percent', percent: value };
  }
  const part = /^(\d+)\/(\d+)$/.exec(text);
  if (part) {
    const n = Number(part[1]);
    const of = Number(part[2]);
    if (of < 1 || n < 1 || n > of) throw new UsageError('--read-data-subset N/M takes 1 <= N <= M.');
    return { kind: 'part', n, of };
  }
  throw new UsageError(`--read-data-subset takes N% or N/M, not "${text}".`);
}

export const checkCommand: Command = {
  name: 'check',
  usage: 'arca check [--read-data | --read-data-subset N%|N/M] [--json]',
  summary: 'verify the repository: structure, and with --read-data every blob',
  options: { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } },
  async run(values, _positionals, global) {
    const subset = str(values, 'read-data-subset');
    if (subset !== undefined && flag(values, 'read-data')) throw new UsageError('Give --read-data or --read-data-subset, not both.');
    const readData: ReadDataSelection = subset !== undefined ? parseSubset(subset) : flag(values, 'read-data') ? { kind: 'all' } : { kind: 'none' };
    const repo = await openRepository(global, { withIndex: false, cache: false });
    const report = await new Checker(repo).run({ readData });
    if (global.json) {
      // A Set has no JSON form: the unusable blobs go out as a sorted list.
      const unusableBlobs = [...report.unusableBlobs].sort();
      process.stdout.write(`${JSON.stringify({ ...report, problems: report.problems.map((p) => ({ ...p, description: describeProblem(p) })), unusableBlobs })}\n`);
    } else {
      for (const n of report.notices) process.stdout.write(`notice: ${describeNotice(n)}\n`);
      for (const p of report.problems) process.stdout.write(`error: ${describeProblem(p)}\n`);
      if (!global.quiet) {
        process.stdout.write(`checked ${report.snapshotsChecked} snapshots, ${report.packsChecked} packs; read ${report.packsRead} packs (${report.blobsRead} blobs): ${report.problems.length === 0 ? 'no errors' : `${report.problems.length} errors`}\n`);
      }
    }
    if (report.problems.length > 0) {
      process.stderr.write(`arca: the repository has ${report.problems.length} errors; see the report above.\n`);
      return 1;
    }
    return 0;
  },
};
