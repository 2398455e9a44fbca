import { leaseTiming } from '../../repository/maintenance/leases.ts';
import { prune, type PruneReport } from '../../repository/maintenance/prune.ts';
import { UsageError } from '../../repository/errors.ts';
import { flag, str, type Command } from '../command.ts';
import { openRepository, type GlobalOptions } from '../context.ts';
import { formatBytes } from '../format.ts';

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--max-repack-size takes a size such as 500M or 2G, not "${text}".`);
  const power = ' kmgt'.indexOf((m[2] ?? '').toLowerCase() || ' ');
  return Math.floor(Number(m[1]) * 1024 ** power);
}

export function printPruneReport(report: PruneReport, global: GlobalOptions, dryRun: boolean): void {
  if (global.json) {
    process.stdout.write(`${JSON.stringify({ message_type: 'prune', dry_run: dryRun, ...report })}\n`);
    return;
  }
  if (global.quiet) return;
  const would = dryRun ? 'would mark' : 'marked';
  process.stdout.write([
    `${would} ${report.packsMarked} packs (${formatBytes(report.bytesMarked)}) for deletion, ${report.packsRepacked} of them repacked (${report.blobsRepacked} live blobs copied)`,
    `deleted ${report.packsDeleted} packs, reclaimed ${formatBytes(report.bytesReclaimed)}${report.packsResurrected > 0 ? `; kept ${report.packsResurrected} packs that new snapshots use` : ''}`,
    `index files: ${report.indexFilesBefore} before, ${report.indexFilesAfter} after; unused space now ${report.unusedPercentAfter.toFixed(1)}%`,
    ...(report.plansPending > 0 ? [`${report.plansPending} prune plans wait for running backups to finish; a later prune deletes their packs`] : []),
    '',
  ].join('\n'));
}

export const pruneCommand: Command = {
  name: 'prune',
  usage: 'arca prune [--max-unused PERCENT] [--max-repack-size SIZE] [--dry-run] [--json]',
  summary: 'delete data no snapshot uses and repack partly used packs (safe while backups run)',
  options: { 'max-unused': { type: 'string' }, 'max-repack-size': { type: 'string' }, 'dry-run': { type: 'boolean' } },
  async run(values, _positionals, global) {
    const maxUnusedText = (str(values, 'max-unused') ?? '5').replace(/%$/, '');
    const maxUnusedPercent = Number(maxUnusedText);
    if (!Number.isFinite(maxUnusedPercent) || maxUnusedPercent < 0 || maxUnusedPercent > 100) throw new UsageError('--max-unused takes a percentage between 0 and 100.');
    const repackText = str(values, 'max-repack-size');
    const dryRun = flag(values, 'dry-run');
    const repo = await openRepository(global, { withIndex: false });
    const report = await prune(repo, {
      maxUnusedPercent,
      maxRepackBytes: repackText === undefined ? undefined : parseSize(repackText),
      dryRun,
      timing: leaseTiming(),
      log: global.quiet || global.json ? undefined : (line) => process.stderr.write(`${line}\n`),
    });
    printPruneReport(report, global, dryRun);
    return 0;
  },
};
