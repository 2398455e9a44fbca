import { Restorer } from '../../engine/restore/restorer.ts';
import { UsageError } from '../../repository/errors.ts';
import { flag, str, strs, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { formatBytes } from '../format.ts';
import { cliReporter, printJson } from '../output.ts';
import { withPool } from './pool.ts';
import { snapshotFilter } from './snapshots.ts';

export const restoreCommand: Command = {
  name: 'restore',
  usage: 'arca restore SNAPSHOT --target DIR [--include GLOB]... [--exclude GLOB]... [--verify] [--json]',
  summary: 'restore a snapshot into a directory',
  options: {
    target: { type: 'string' },
    include: { type: 'string', multiple: true },
    exclude: { type: 'string', multiple: true },
    verify: { type: 'boolean' },
    host: { type: 'string' },
    tag: { type: 'string', multiple: true },
    path: { type: 'string', multiple: true },
  },
  async run(values, positionals, global) {
    const ref = positionals[0];
    const target = str(values, 'target');
    if (ref === undefined || target === undefined) throw new UsageError('Usage: arca restore SNAPSHOT --target DIR');
    const started = performance.now();
    const repo = await openRepository(global, { withIndex: true });
    const { id, snapshot } = await repo.resolveSnapshot(ref, snapshotFilter(values));
    const reporter = cliReporter(global);
    const summary = await withPool(repo, (pool) =>
      new Restorer(repo, pool, reporter).run(snapshot, { target, includes: strs(values, 'include'), excludes: strs(values, 'exclude'), verify: flag(values, 'verify') }));
    reporter.done();
    const duration = (performance.now() - started) / 1000;
    if (global.json) printJson({ message_type: 'summary', snapshot_id: id, ...summary, total_duration: duration });
    else if (!global.quiet) {
      process.stdout.write(`restored snapshot ${id.slice(0, 8)}: ${summary.files_restored} files, ${summary.dirs_restored} dirs, ${formatBytes(summary.bytes_restored)} in ${duration.toFixed(2)} s${summary.errors > 0 ? `, ${summary.errors} errors` : ''}\n`);
    }
    return summary.errors > 0 ? 1 : 0;
  },
};
