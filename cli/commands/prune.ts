import { leaseOptionsFromEnv } from '../lease-options.ts';
import type { Repository } from '../../repository/repository.ts';
import { prune, type PruneReport } from '../../repository/maintenance/prune.ts';
import { UsageError } from '../../repository/errors.ts';
import { flag, str, type Command, type OptionValues } from '../command.ts';
import { openRepository, type GlobalOptions } from '../context.ts';
import { formatBytes } from '../format.ts';
import { printJson, snakeCaseKeys } from '../output.ts';

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--max-repack-size takes a size such as 500M or 2G, not "${text}".`);
  const power = ' kmgt'.indexOf((m[2] ?? '').toLowerCase() || ' ');
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/** prune's --json document (also the "prune" member of forget --prune --json's). */
export function pruneJson(report: PruneReport, dryRun: boolean): Record<string, unknown> {
  return { ...snakeCaseKeys(report), dry_run: dryRun };
}

export function printPruneReport(report: PruneReport, global: GlobalOptions, dryRun: boolean): void {
  if (global.json) {
    printJson(pruneJson(report, dryRun));
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
  args: '',
  summary: 'delete data no snapshot uses and repack partly used packs (safe while backups run)',
  options: {
    'max-unused': { type: 'string', value: 'PERCENT', description: 'repack partly used packs until at most PERCENT of the pack space is unused (default 5%)' },
    'max-repack-size': { type: 'string', value: 'SIZE', description: 'repack at most SIZE of packs in this run: a number of bytes with an optional K, M, G or T (binary: 500M is 500 MiB)' },
    'dry-run': { type: 'boolean', description: 'only report what would be deleted and repacked' },
  },
  async run(values, _positionals, global) {
    const report = await pruneWith(values, global);
    printPruneReport(report, global, flag(values, 'dry-run'));
    return 0;
  },
};

/** Runs prune with the options of `arca prune` (forget --prune passes its own, and its repository). */
export async function pruneWith(values: OptionValues, global: GlobalOptions, opened?: Repository): Promise<PruneReport> {
  const maxUnusedText = (str(values, 'max-unused') ?? '5').replace(/%$/, '');
  const maxUnusedPercent = Number(maxUnusedText);
  if (!Number.isFinite(maxUnusedPercent) || maxUnusedPercent < 0 || maxUnusedPercent > 100) throw new UsageError('--max-unused takes a percentage between 0 and 100.');
  const repackText = str(values, 'max-repack-size');
  const dryRun = flag(values, 'dry-run');
  const repo = opened ?? await openRepository(global, { withIndex: false });
  return prune(repo, {
    maxUnusedPercent,
    maxRepackBytes: repackText === undefined ? undefined : parseSize(repackText),
    dryRun,
    lease: leaseOptionsFromEnv(),
    log: global.quiet || global.json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
}
