import { copySnapshots } from '../../engine/index.ts';
import { UsageError } from '../../repository/errors.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import { str, type Command } from '../command.ts';
import { cliLogger, interruptions, openOtherRepository, openRepository, readPasswordFrom } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
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
    const fromPassword = readPasswordFrom(str(values, 'from-password-file') ?? process.env.ARCA_FROM_PASSWORD_FILE, 'ARCA_FROM_PASSWORD', '--from-password-file');
    const interrupt = interruptions();
    const source = await openOtherRepository(global, fromUrl, fromPassword);
    const dest = await openRepository(global, { withIndex: false });
    try {
      const outcome = await copySnapshots(source, dest, {
        snapshots: positionals.length === 0 ? undefined : positionals, lease: leaseOptionsFromEnv(), signal: interrupt.signal, logger: cliLogger(global),
        onCopied: ({ sourceId, snapshotId }) => {
          if (global.json) printJson({ message_type: 'copied', source_id: sourceId, snapshot_id: snapshotId });
          else if (!global.quiet) process.stdout.write(`copied snapshot ${sourceId.slice(0, 8)} to ${snapshotId.slice(0, 8)}\n`);
        },
      });
      if (outcome.status === 'canceled') {
        process.stderr.write(`arca: interrupted after copying ${outcome.copied.length} snapshots; a later copy goes on from there.\n`);
        return interrupt.exitCode() ?? EXIT.fatal;
      }
      const s = outcome.stats;
      if (global.json) printJson({ message_type: 'summary', snapshots_copied: s.snapshotsCopied, snapshots_skipped: s.snapshotsSkipped, blobs_read: s.blobsRead, blobs_stored: s.blobsStored, data_added: outcome.dataAdded });
      else if (!global.quiet) process.stdout.write(`${s.snapshotsCopied} snapshots copied, ${s.snapshotsSkipped} already there; ${s.blobsStored} of ${s.blobsRead} blobs were new\n`);
      return EXIT.ok;
    } finally {
      interrupt.dispose();
      await Promise.all([source.close(), dest.close()]);
    }
  },
};
