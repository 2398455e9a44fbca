import os from 'node:os';
import path from 'node:path';
import { Archiver } from '../../engine/backup/archiver.ts';
import { withSpoolDir } from '../../engine/backup/spool-dir.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import { UsageError } from '../../repository/errors.ts';
import { checkPathPattern, compressionLevel, flag, str, strs, type Command, type OptionValues } from '../command.ts';
import { openRepository, type GlobalOptions } from '../context.ts';
import { Lease } from '../../repository/maintenance/leases.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import type { Repository } from '../../repository/repository.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../format.ts';
import { cliReporter, printJson } from '../output.ts';
import { withPool } from './pool.ts';

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
    const started = performance.now();
    const time = parseTime(str(values, 'time'));
    const repo = await openRepository(global, { withIndex: false });
    // The lease comes before the index: a prune must see this writer before it can matter.
    const lease = await Lease.acquire(repo, 'backup', leaseOptionsFromEnv());
    try {
      await repo.loadIndex();
      return await runBackup(repo, lease, values, positionals, global, started, time);
    } finally {
      await lease.release();
    }
  },
};

async function runBackup(
  repo: Repository, lease: Lease, values: OptionValues, positionals: string[], global: GlobalOptions, started: number, time: Date | undefined,
): Promise<number> {
  const host = str(values, 'host') ?? os.hostname();
  const paths = positionals.map((p) => path.resolve(p)).sort();
  const level = compressionLevel(values) ?? repo.config.compression.level;
  const parentRef = str(values, 'parent');
  const parent = parentRef !== undefined
    ? await repo.resolveSnapshot(parentRef)
    : (await repo.listSnapshots({ host })).find((s) => sameSet(s.snapshot.paths, paths));
  const reporter = cliReporter(global);
  const result = await withSpoolDir(repo.storage, (spoolDir) => withPool(repo, (pool) => {
    const archiver = new Archiver(repo, pool, new BlobWriter(repo), reporter);
    return archiver.run({
      paths, host, parent, lease, scan: process.stderr.isTTY && !global.quiet, tags: strs(values, 'tag'), excludes: strs(values, 'exclude'), oneFileSystem: !flag(values, 'cross-filesystems'), withAtime: flag(values, 'with-atime'), time,
      compressionLevel: level,
    });
  }, { spoolDir, compressionLevel: level }));
  reporter.done();
  const s = result.summary;
  const duration = (performance.now() - started) / 1000;
  if (global.json) {
    printJson({ message_type: 'summary', ...s, total_duration: duration, snapshot_id: result.snapshotId });
  } else if (!global.quiet) {
    process.stdout.write([
      `Files: ${s.files_new} new, ${s.files_changed} changed, ${s.files_unmodified} unmodified`,
      `Dirs:  ${s.dirs_new} new, ${s.dirs_changed} changed, ${s.dirs_unmodified} unmodified`,
      `Added to the repository: ${formatBytes(s.data_added)}`,
      `processed ${s.total_files_processed} files, ${formatBytes(s.total_bytes_processed)} in ${duration.toFixed(2)} s`,
      `snapshot ${result.snapshotId.slice(0, 8)} saved`,
      '',
    ].join('\n'));
  }
  if (s.files_unreadable > 0) {
    process.stderr.write(`warning: ${s.files_unreadable} files or directories could not be read and are not in the snapshot.\n`);
    return EXIT.partial;
  }
  return EXIT.ok;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** --time: an ISO 8601 time with a date, recorded as the snapshot time instead of now. */
function parseTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--time "${text}" is not an ISO 8601 time such as 2024-05-01T12:00:00Z.`);
  return new Date(ms);
}
