import { BlobWriter } from '../../repository/blob-writer.ts';
import { UsageError } from '../../repository/errors.ts';
import { SnapshotCopier } from '../../repository/maintenance/copy.ts';
import { Lease } from '../../repository/maintenance/leases.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import { Repository } from '../../repository/repository.ts';
import { str, type Command } from '../command.ts';
import { openRepository, readPasswordFrom, storageFor } from '../context.ts';
import { printJson } from '../output.ts';

export const copyCommand: Command = {
  name: 'copy',
  args: '[SNAPSHOT...] --from-repo URL',
  summary: 'copy snapshots from another repository into this one, deduplicated',
  details: 'Without SNAPSHOT, every snapshot of the source that is not in this repository yet. An interrupted copy resumes where it stopped.',
  options: {
    'from-repo': { type: 'string', value: 'URL', complete: 'dir', description: 'the source repository (else ARCA_FROM_REPOSITORY)' },
    'from-password-file': {
      type: 'string', value: 'FILE', complete: 'file',
      description: 'read the source\'s password from the first line of FILE (else ARCA_FROM_PASSWORD_FILE, then ARCA_FROM_PASSWORD)',
    },
  },
  async run(values, positionals, global) {
    const fromUrl = str(values, 'from-repo') ?? process.env.ARCA_FROM_REPOSITORY;
    if (fromUrl === undefined || fromUrl === '') throw new UsageError('Give the source repository with --from-repo or ARCA_FROM_REPOSITORY.');
    const source = await Repository.open(
      await storageFor({ ...global, repo: fromUrl }),
      readPasswordFrom(str(values, 'from-password-file') ?? process.env.ARCA_FROM_PASSWORD_FILE, 'ARCA_FROM_PASSWORD', '--from-password-file'),
    );
    await source.loadIndex();
    const dest = await openRepository(global, { withIndex: false });
    if (dest.config.id === source.config.id) throw new UsageError('The source and destination are the same repository.');
    const lease = await Lease.acquire(dest, 'copy', leaseOptionsFromEnv());
    try {
      await dest.loadIndex();
      const chosen = positionals.length === 0 ? await source.listSnapshots() : await Promise.all(positionals.map((ref) => source.resolveSnapshot(ref)));
      // An index file after every pack: an interrupted copy resumes from the last pack it stored.
      const writer = new BlobWriter(dest, { packsPerIndex: 1 });
      const copier = new SnapshotCopier(source, dest, writer);
      for (const stored of (await copier.pending(chosen)).reverse()) {
        const snapshot = await copier.copyTrees(stored);
        // Each snapshot is saved only after everything it references is packed and indexed.
        await writer.flush();
        lease.assertFresh();
        const id = await dest.saveSnapshot(snapshot);
        if (global.json) printJson({ message_type: 'copied', source_id: stored.id, snapshot_id: id });
        else if (!global.quiet) process.stdout.write(`copied snapshot ${stored.id.slice(0, 8)} to ${id.slice(0, 8)}\n`);
      }
      const s = copier.stats;
      if (global.json) printJson({ message_type: 'summary', snapshots_copied: s.snapshotsCopied, snapshots_skipped: s.snapshotsSkipped, blobs_read: s.blobsRead, blobs_stored: s.blobsStored, data_added: writer.stats.bytesAdded });
      else if (!global.quiet) process.stdout.write(`${s.snapshotsCopied} snapshots copied, ${s.snapshotsSkipped} already there; ${s.blobsStored} of ${s.blobsRead} blobs were new\n`);
      return 0;
    } finally {
      await lease.release();
    }
  },
};
