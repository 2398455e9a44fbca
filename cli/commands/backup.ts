import { backupVolume, type ParentChoice } from '../../engine/index.ts';
import { UsageError } from '../../repository/errors.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import { checkPathPattern, compressionLevel, flag, str, strs, type Command } from '../command.ts';
import { cliLogger, interruptions, openRepository, workerCount } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../format.ts';
import { cliReporter, printJson } from '../output.ts';

export const backupCommand: Command = {
  name: 'backup',
  args: 'PATH...',
  summary: 'back up files and directories into a new snapshot',
  details: [
    'PATHs are recorded as absolute paths (relative ones are resolved against the current directory).',
    'The parent, whose unchanged files are not read again, is the newest snapshot of the same host and the same set of paths, unless --parent names one.',
  ].join('\n'),
  options: {
    tag: { type: 'string', multiple: true, value: 'TAG', description: 'add TAG to the snapshot; repeat for several (KEY=VALUE tags can be grouped by in forget)' },
    host: { type: 'string', value: 'HOST', description: 'record HOST as the snapshot\'s host name instead of this machine\'s' },
    parent: { type: 'string', value: 'SNAPSHOT', description: 'compare against SNAPSHOT instead of the newest snapshot of the same host and paths' },
    exclude: {
      type: 'string', multiple: true, value: 'GLOB', check: checkPathPattern,
      description: 'leave out what matches GLOB: without "/" a name at any depth (*.tmp, node_modules), with "/" an absolute path (/srv/data/cache); repeatable',
    },
    'cross-filesystems': { type: 'boolean', description: 'descend into other file systems mounted below PATH (by default they are left out)' },
    'with-atime': { type: 'boolean', description: 'record access times too' },
    'compression-level': {
      type: 'string', value: 'N', complete: ['0', '1', '3', '9', '19'],
      description: 'zstd level, 0 (store uncompressed) to 19 for this backup instead of the repository\'s default',
    },
    time: { type: 'string', value: 'TIME', hidden: true, description: 'record this ISO 8601 time instead of now (imports and tests)' },
  },
  async run(values, positionals, global) {
    if (positionals.length === 0) throw new UsageError('Give at least one path to back up: arca backup PATH...');
    const time = parseTime(str(values, 'time'));
    const parentRef = str(values, 'parent');
    const parent: ParentChoice | undefined = parentRef === undefined ? undefined : { kind: 'snapshot', ref: parentRef };
    const interrupt = interruptions();
    const repo = await openRepository(global, { withIndex: false });
    const reporter = cliReporter(global);
    try {
      const outcome = await backupVolume(repo, positionals, {
        host: str(values, 'host'), tags: strs(values, 'tag'), parent, excludes: strs(values, 'exclude'),
        oneFileSystem: !flag(values, 'cross-filesystems'), withAtime: flag(values, 'with-atime'), time, compressionLevel: compressionLevel(values),
        countTotals: process.stderr.isTTY && !global.quiet, reporter, workers: workerCount(), lease: leaseOptionsFromEnv(),
        signal: interrupt.signal, logger: cliLogger(global),
      });
      reporter.done();
      if (outcome.status === 'canceled') {
        process.stderr.write('arca: interrupted; no snapshot was saved (what was uploaded is reused by the next backup).\n');
        return interrupt.exitCode() ?? EXIT.fatal;
      }
      const s = outcome.summary;
      if (global.json) {
        printJson({ message_type: 'summary', ...s, total_duration: outcome.durationSeconds, snapshot_id: outcome.snapshotId });
      } else if (!global.quiet) {
        process.stdout.write([
          `Files: ${s.files_new} new, ${s.files_changed} changed, ${s.files_unmodified} unmodified`,
          `Dirs:  ${s.dirs_new} new, ${s.dirs_changed} changed, ${s.dirs_unmodified} unmodified`,
          `Added to the repository: ${formatBytes(s.data_added)}`,
          `processed ${s.total_files_processed} files, ${formatBytes(s.total_bytes_processed)} in ${outcome.durationSeconds.toFixed(2)} s`,
          `snapshot ${outcome.snapshotId.slice(0, 8)} saved`,
          '',
        ].join('\n'));
      }
      if (s.files_unreadable > 0) {
        process.stderr.write(`warning: ${s.files_unreadable} files or directories could not be read and are not in the snapshot.\n`);
        return EXIT.partial;
      }
      return EXIT.ok;
    } finally {
      interrupt.dispose();
      await repo.close();
    }
  },
};

/** --time: an ISO 8601 time with a date, recorded as the snapshot time instead of now. */
function parseTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--time "${text}" is not an ISO 8601 time such as 2024-05-01T12:00:00Z.`);
  return new Date(ms);
}
