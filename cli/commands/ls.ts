import { walkTree } from '../../repository/tree/walk.ts';
import type { TreeNode } from '../../repository/tree/tree.ts';
import { UsageError } from '../../repository/errors.ts';
import type { Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson } from '../output.ts';

function nodeSize(node: TreeNode): number {
  return node.type === 'file' ? node.size : 0;
}

function mtimeIso(node: TreeNode): string {
  return new Date(Number(node.mtimeNs / 1_000_000n)).toISOString();
}

export const lsCommand: Command = {
  name: 'ls',
  usage: 'arca ls SNAPSHOT [PATH] [--json]',
  summary: 'list the files in a snapshot',
  options: {},
  async run(_values, positionals, global) {
    const [ref, under] = positionals;
    if (ref === undefined) throw new UsageError('Usage: arca ls SNAPSHOT [PATH]');
    const repo = await openRepository(global, { withIndex: true });
    const { id, snapshot } = await repo.resolveSnapshot(ref);
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
