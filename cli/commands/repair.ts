import { Checker } from '../../repository/check/checker.ts';
import { UsageError } from '../../repository/errors.ts';
import { Lease } from '../../repository/maintenance/leases.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import { repairIndex, SnapshotRepairer } from '../../repository/maintenance/repair.ts';
import { flag, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson, snakeCaseKeys } from '../output.ts';

export const repairCommand: Command = {
  name: 'repair',
  args: 'index|snapshots',
  summary: 'rebuild the index from the packs, or rewrite snapshots without data that is lost',
  details: [
    'index: read every pack header and write a new index in place of the old one.',
    'snapshots: rewrite each snapshot that references lost data without it (tagged "repaired"); the originals are replaced.',
  ].join('\n'),
  actions: ['index', 'snapshots'],
  options: {
    'read-data': { type: 'boolean', description: 'snapshots: also treat blobs that fail to decrypt as lost (reads every pack)' },
    'dry-run': { type: 'boolean', description: 'only report what would change; write nothing' },
  },
  async run(values, positionals, global) {
    const [what] = positionals;
    const log = (line: string): void => { if (!global.quiet) process.stderr.write(`${line}\n`); };
    if (what === 'index') {
      const repo = await openRepository(global, { withIndex: false, cache: false });
      const indexDryRun = flag(values, 'dry-run');
      const report = await repairIndex(repo, leaseOptionsFromEnv(), log, { dryRun: indexDryRun });
      if (global.json) printJson({ ...snakeCaseKeys(report), dry_run: indexDryRun });
      else {
        for (const u of report.packsUnreadable) log(`pack ${u.pack} has an unreadable header (${u.message}); kept its old index entries if there were any`);
        if (!global.quiet) {
          process.stdout.write(indexDryRun
            ? `dry run, nothing was written: read ${report.packsRead} pack headers; would index ${report.blobsIndexed} blobs in ${report.indexFilesWritten} index files, replacing ${report.indexFilesRemoved}\n`
            : `read ${report.packsRead} pack headers, indexed ${report.blobsIndexed} blobs in ${report.indexFilesWritten} index files, replaced ${report.indexFilesRemoved}\n`);
        }
      }
      return 0;
    }
    if (what !== 'snapshots') throw new UsageError('Say what to repair: arca repair index, or arca repair snapshots.');
    const dryRun = flag(values, 'dry-run');
    const repo = await openRepository(global, { withIndex: false, cache: false });
    const lease = dryRun ? undefined : await Lease.acquire(repo, 'repair-snapshots', leaseOptionsFromEnv());
    try {
      // The checker loads the index and finds what is lost: missing packs, and with --read-data damaged blobs.
      const check = await new Checker(repo).run({ readData: flag(values, 'read-data') ? { kind: 'all' } : { kind: 'none' } });
      const repairer = new SnapshotRepairer(repo, check.unusableBlobs, lease);
      let changed = 0;
      for (const id of await repo.listSnapshotIds()) {
        const result = await repairer.repair(id, dryRun);
        if (result.filesRemoved.length === 0 && result.dirsEmptied.length === 0) continue;
        changed++;
        if (global.json) printJson({ message_type: 'repaired', snapshot_id: id, replaced_by: result.replacedBy ?? null, files_removed: result.filesRemoved, dirs_emptied: result.dirsEmptied });
        else {
          process.stdout.write(`snapshot ${id.slice(0, 8)}${result.replacedBy ? ` -> ${result.replacedBy.slice(0, 8)}` : ' (dry run)'}: ${result.filesRemoved.length} files removed, ${result.dirsEmptied.length} directories emptied\n`);
          for (const f of result.filesRemoved) process.stdout.write(`  lost file ${f}\n`);
          for (const d of result.dirsEmptied) process.stdout.write(`  lost directory ${d}\n`);
        }
      }
      if (global.json) printJson({ message_type: 'summary', snapshots_repaired: changed, dry_run: dryRun });
      else if (!global.quiet) process.stdout.write(changed === 0 ? 'no snapshot references lost data\n' : `${changed} snapshots ${dryRun ? 'would be' : 'were'} repaired\n`);
      return 0;
    } finally {
      await lease?.release();
    }
  },
};
