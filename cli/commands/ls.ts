import path from 'node:path';
import { walkTree } from '../../repository/tree/walk.ts';
import type { TreeNode } from '../../repository/tree/tree.ts';
import { UsageError } from '../../repository/errors.ts';
import { SNAPSHOT_FILTER_OPTIONS, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson } from '../output.ts';
import { snapshotFilter } from './snapshots.ts';

function nodeSize(node: TreeNode): number {
  return node.type === 'file' ? node.size : 0;
}

function mtimeIso(node: TreeNode): string {
  return new Date(Number(node.mtimeNs / 1_000_000n)).toISOString();
}

export const lsCommand: Command = {
  name: 'ls',
  args: 'SNAPSHOT [PATH]',
  summary: 'list the files in a snapshot',
  details: [
    'Paths are absolute, as backup recorded them; with PATH (absolute too), only that path and what is below it.',
    'SNAPSHOT "latest" is the newest snapshot that matches --host, --tag and --path.',
  ].join('\n'),
  options: SNAPSHOT_FILTER_OPTIONS,
  async run(values, positionals, global) {
    const [ref, under] = positionals;
    if (ref === undefined) throw new UsageError('Give the snapshot to list: arca ls SNAPSHOT [PATH].');
    const repo = await openRepository(global, { withIndex: true });
    const { id, snapshot } = await repo.resolveSnapshot(ref, snapshotFilter(values));
    if (under !== undefined && !under.startsWith('/')) {
      // Relative to the current directory (as backup resolves its PATHs), or to a backed-up path.
      // A snapshot rooted at its directory (Snapshot.root, the agent's) has its paths from that root.
      const inSnapshot = snapshot.root === undefined ? snapshot.paths.map((p) => path.posix.join(p, under)) : [path.posix.join('/', under)];
      const guesses = [...new Set([path.resolve(under), ...inSnapshot])];
      throw new UsageError(`"${under}" is a relative path, and paths in a snapshot are absolute; did you mean ${guesses.join(' or ')}?`);
    }
    const prefix = under === undefined ? undefined : Buffer.from(under.replace(/\/+$/, ''));
    if (global.json) printJson({ message_type: 'snapshot', id, short_id: id.slice(0, 8), ...snapshot });
    for await (const { path, node } of walkTree(repo, Buffer.from(snapshot.tree, 'hex'))) {
      if (prefix && !(path.equals(prefix) || (path.length > prefix.length && path.subarray(0, prefix.length).equals(prefix) && path[prefix.length] === 0x2f))) continue;
      if (global.json) {
        printJson({ message_type: 'node', path: path.toString(), type: node.type, size: nodeSize(node), mode: node.mode, mtime: mtimeIso(node), uid: node.uid, gid: node.gid });
      } else {
        // JSON-quote names that would break a line-per-entry listing.
        const text = path.toString();
        process.stdout.write(`${/[\n\r\t]/.test(text) || !Buffer.from(text).equals(path) ? JSON.stringify(text) : text}\n`);
      }
    }
    return 0;
  },
};
