import { restoreSnapshot } from '../../engine/index.ts';
import { DEFAULT_OVERWRITE } from '../../engine/restore/restorer.ts';
import { OVERWRITE_CHOICES, type Overwrite } from '../../engine/fs/safe-fs.ts';
import { UsageError } from '../../repository/errors.ts';
import { checkDirectoryTarget, checkPathPattern, flag, SNAPSHOT_FILTER_OPTIONS, str, strs, type Command } from '../command.ts';
import { cliLogger, interruptions, openRepository, workerCount } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../format.ts';
import { cliReporter, printJson } from '../output.ts';
import { snapshotFilter } from './snapshots.ts';

export const restoreCommand: Command = {
  name: 'restore',
  args: 'SNAPSHOT --target DIR',
  summary: 'restore a snapshot into a directory',
  details: [
    'Files land at their absolute path below DIR: a snapshot of /srv/data restores /srv/data/a.txt to DIR/srv/data/a.txt.',
    'SNAPSHOT "latest" is the newest snapshot that matches --host, --tag and --path.',
  ].join('\n'),
  options: {
    target: { type: 'string', value: 'DIR', complete: 'dir', check: checkDirectoryTarget, description: 'restore below DIR (created if missing; must not be a file)' },
    include: {
      type: 'string', multiple: true, value: 'GLOB', check: checkPathPattern,
      description: 'restore only what matches GLOB, with everything below it: without "/" a name at any depth (*.md), with "/" an absolute path in the snapshot (/srv/data/db); repeatable',
    },
    exclude: {
      type: 'string', multiple: true, value: 'GLOB', check: checkPathPattern,
      description: 'leave out what matches GLOB (same rules as --include; applies inside what --include selects too); repeatable',
    },
    verify: { type: 'boolean', description: 'read every restored file back and check its content' },
    overwrite: {
      type: 'string', value: 'WHEN', complete: OVERWRITE_CHOICES, check: checkOverwrite,
      description: `existing files: always rewritten, if-changed (their chunks differ), if-newer (the snapshot's is newer) or never (default ${DEFAULT_OVERWRITE})`,
    },
    delete: { type: 'boolean', description: 'replace a directory by a file (or the reverse) and remove what the snapshot does not have; not with --include/--exclude' },
    ...SNAPSHOT_FILTER_OPTIONS,
  },
  async run(values, positionals, global) {
    const ref = positionals[0];
    const target = str(values, 'target');
    if (ref === undefined || target === undefined) throw new UsageError('Usage: arca restore SNAPSHOT --target DIR');
    const interrupt = interruptions();
    const repo = await openRepository(global, { withIndex: false });
    const reporter = cliReporter(global);
    try {
      const outcome = await restoreSnapshot(repo, ref, target, {
        includes: strs(values, 'include'), excludes: strs(values, 'exclude'), verify: flag(values, 'verify'), filter: snapshotFilter(values),
        overwrite: str(values, 'overwrite') as Overwrite | undefined, delete: flag(values, 'delete'),
        reporter, workers: workerCount(), signal: interrupt.signal, logger: cliLogger(global),
      });
      reporter.done();
      if (outcome.status === 'canceled') {
        process.stderr.write(`arca: interrupted; ${target} holds only part of the snapshot.\n`);
        return interrupt.exitCode() ?? EXIT.fatal;
      }
      const { snapshotId: id, summary, durationSeconds: duration } = outcome;
      if (global.json) printJson({ message_type: 'summary', snapshot_id: id, ...summary, total_duration: duration });
      else if (!global.quiet) {
        process.stdout.write(`restored snapshot ${id.slice(0, 8)}: ${summary.files_restored} files, ${summary.dirs_restored} dirs, ${formatBytes(summary.bytes_restored)} in ${duration.toFixed(2)} s${summary.errors > 0 ? `, ${summary.errors} errors` : ''}\n`);
      }
      return summary.errors > 0 ? EXIT.fatal : EXIT.ok;
    } finally {
      interrupt.dispose();
      await repo.close();
    }
  },
};

function checkOverwrite(value: string, option: string): void {
  if (!OVERWRITE_CHOICES.includes(value as Overwrite)) throw new UsageError(`${option} must be one of ${OVERWRITE_CHOICES.join(', ')}; got "${value}".`);
}
