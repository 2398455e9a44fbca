import { Checker, type ReadDataSelection } from '../../repository/check/checker.ts';
import { parseReadDataSubset } from '../../repository/check/read-data-selection.ts';
import { describeNotice, describeProblem } from '../../repository/check/report.ts';
import { UsageError } from '../../repository/errors.ts';
import { flag, str, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson } from '../output.ts';

export const checkCommand: Command = {
  name: 'check',
  args: '',
  summary: 'verify the repository: structure, and with --read-data every blob',
  details: 'Exits 1 when it finds an error; docs/maintenance.md says what to do then.',
  options: {
    'read-data': { type: 'boolean', description: 'also read, decrypt and hash every blob of every pack' },
    'read-data-subset': {
      type: 'string', value: 'N%|N/M',
      description: 'read a subset of the packs: N% of them at random, or part N of M (the same part every time: rotate N to cover everything)',
    },
  },
  async run(values, _positionals, global) {
    const subset = str(values, 'read-data-subset');
    if (subset !== undefined && flag(values, 'read-data')) throw new UsageError('Give --read-data or --read-data-subset, not both.');
    const readData: ReadDataSelection = subset !== undefined ? parseReadDataSubset(subset) : flag(values, 'read-data') ? { kind: 'all' } : { kind: 'none' };
    const repo = await openRepository(global, { withIndex: false, cache: false });
    const report = await new Checker(repo).run({ readData });
    if (global.json) {
      printJson({
        snapshots_checked: report.snapshotsChecked, packs_checked: report.packsChecked, packs_read: report.packsRead, blobs_read: report.blobsRead,
        problems: report.problems.map((p) => ({ ...p, description: describeProblem(p) })),
        notices: report.notices.map((n) => ({ ...n, description: describeNotice(n) })),
        // A Set has no JSON form: the unusable blobs go out as a sorted list.
        unusable_blobs: [...report.unusableBlobs].sort(),
      });
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
