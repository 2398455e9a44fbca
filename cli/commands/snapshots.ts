import path from 'node:path';
import type { SnapshotFilter } from '../../repository/snapshot/snapshot.ts';
import { SNAPSHOT_FILTER_OPTIONS, str, strs, type Command, type OptionValues } from '../command.ts';
import { openRepository } from '../context.ts';

export function snapshotFilter(values: OptionValues): SnapshotFilter {
  const tags = strs(values, 'tag');
  // Backup records absolute paths, resolved against its current directory; --path is read the same way.
  const paths = strs(values, 'path').map((p) => path.resolve(p));
  return { host: str(values, 'host'), tags: tags.length > 0 ? tags : undefined, paths: paths.length > 0 ? paths : undefined };
}

export const snapshotsCommand: Command = {
  name: 'snapshots',
  args: '',
  summary: 'list snapshots',
  details: 'Oldest first; times are UTC.',
  options: SNAPSHOT_FILTER_OPTIONS,
  async run(values, _positionals, global) {
    const repo = await openRepository(global, { withIndex: false });
    const list = (await repo.listSnapshots(snapshotFilter(values))).reverse();
    if (global.json) {
      process.stdout.write(`${JSON.stringify(list.map(({ id, snapshot }) => ({ id, short_id: id.slice(0, 8), ...snapshot })))}\n`);
      return 0;
    }
    const rows = list.map(({ id, snapshot }) => [id.slice(0, 8), snapshot.time.replace('T', ' ').slice(0, 19), snapshot.hostname, snapshot.tags.join(','), snapshot.paths.join(', ')]);
    const header = ['ID', 'Time', 'Host', 'Tags', 'Paths'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
    process.stdout.write(`${[line(header), ...rows.map(line), `${list.length} snapshots`].join('\n')}\n`);
    return 0;
  },
};
