import { UsageError } from '../../repository/errors.ts';
import type { StoredSnapshot } from '../../repository/snapshot/snapshot.ts';
import { walkTree } from '../../repository/tree/walk.ts';
import { str, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { formatBytes } from '../format.ts';

export const statsCommand: Command = {
  name: 'stats',
  args: '[SNAPSHOT]',
  summary: 'sizes of snapshots: what a restore writes, or what the repository stores for them',
  details: 'Without SNAPSHOT, all snapshots together; data they share counts once in raw-data mode.',
  options: {
    mode: {
      type: 'string', value: 'MODE', complete: ['restore-size', 'raw-data'],
      description: 'restore-size (default): the files\' sizes; raw-data: the blobs stored for them, compressed and uncompressed',
    },
  },
  async run(values, positionals, global) {
    const mode = str(values, 'mode') ?? 'restore-size';
    if (mode !== 'restore-size' && mode !== 'raw-data') throw new UsageError('--mode is restore-size or raw-data.');
    const repo = await openRepository(global, { withIndex: true });
    const ref = positionals[0];
    const snapshots: StoredSnapshot[] = ref === undefined ? await repo.listSnapshots() : [await repo.resolveSnapshot(ref)];
    let totalSize = 0;
    let fileCount = 0;
    const blobs = new Set<string>();
    let storedSize = 0;
    let rawSize = 0;
    for (const { snapshot } of snapshots) {
      const root = Buffer.from(snapshot.tree, 'hex');
      for await (const { node } of walkTree(repo, root)) {
        const ids = node.type === 'file' ? node.content : node.type === 'dir' ? [node.subtree] : [];
        if (node.type === 'file') {
          fileCount++;
          totalSize += node.size;
        }
        for (const id of ids) {
          const key = id.toString('hex');
          if (blobs.has(key)) continue;
          blobs.add(key);
          const loc = repo.locate(id);
          storedSize += loc?.length ?? 0;
          rawSize += loc?.rawLength ?? 0;
        }
      }
    }
    const doc = mode === 'restore-size'
      ? { total_size: totalSize, total_file_count: fileCount, snapshots_count: snapshots.length }
      : { total_size: storedSize, total_uncompressed_size: rawSize, total_blob_count: blobs.size, snapshots_count: snapshots.length };
    if (global.json) process.stdout.write(`${JSON.stringify(doc)}\n`);
    else if (mode === 'restore-size') process.stdout.write(`Snapshots: ${snapshots.length}\nFiles: ${fileCount}\nTotal size: ${formatBytes(totalSize)}\n`);
    else process.stdout.write(`Snapshots: ${snapshots.length}\nBlobs: ${blobs.size}\nStored size: ${formatBytes(storedSize)}\nUncompressed: ${formatBytes(rawSize)}\n`);
    return 0;
  },
};
