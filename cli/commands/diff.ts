import { UsageError } from '../../repository/errors.ts';
import type { Repository } from '../../repository/repository.ts';
import type { TreeNode } from '../../repository/tree/tree.ts';
import { walkTree } from '../../repository/tree/walk.ts';
import type { Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson } from '../output.ts';

type Change = '+' | '-' | 'M' | 'T';

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type !== b.type || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (a.type === 'file' && b.type === 'file') return a.size === b.size && a.content.length === b.content.length && a.content.every((id, i) => b.content[i]?.equals(id));
  if (a.type === 'symlink' && b.type === 'symlink') return a.linkTarget.equals(b.linkTarget);
  return a.type !== 'file' || a.mtimeNs === b.mtimeNs;
}

/** Compares two trees, skipping subtrees whose IDs are equal (nothing below them changed). */
async function* diffTrees(repo: Repository, left: Buffer, right: Buffer, prefix: Buffer): AsyncGenerator<{ change: Change; path: Buffer }> {
  if (left.equals(right)) return;
  const [l, r] = await Promise.all([repo.loadTree(left), repo.loadTree(right)]);
  const rightByName = new Map(r.nodes.map((n) => [n.name.toString('hex'), n]));
  const leftNames = new Set(l.nodes.map((n) => n.name.toString('hex')));
  for (const a of l.nodes) {
    const path = Buffer.concat([prefix, Buffer.from('/'), a.name]);
    const b = rightByName.get(a.name.toString('hex'));
    if (!b) yield* removedOrAdded(repo, '-', a, path);
    else if (a.type === 'dir' && b.type === 'dir') yield* diffTrees(repo, a.subtree, b.subtree, path);
    else if (a.type !== b.type) yield { change: 'T', path };
    else if (!sameContent(a, b)) yield { change: 'M', path };
  }
  for (const b of r.nodes) {
    if (!leftNames.has(b.name.toString('hex'))) yield* removedOrAdded(repo, '+', b, Buffer.concat([prefix, Buffer.from('/'), b.name]));
  }
}

async function* removedOrAdded(repo: Repository, change: '+' | '-', node: TreeNode, path: Buffer): AsyncGenerator<{ change: Change; path: Buffer }> {
  yield { change, path };
  if (node.type === 'dir') for await (const inner of walkTree(repo, node.subtree, path)) yield { change, path: inner.path };
}

export const diffCommand: Command = {
  name: 'diff',
  args: 'SNAPSHOT SNAPSHOT',
  summary: 'show what changed between two snapshots (+ added, - removed, M modified, T type changed)',
  options: {},
  async run(_values, positionals, global) {
    const [a, b] = positionals;
    if (a === undefined || b === undefined) throw new UsageError('Usage: arca diff SNAPSHOT SNAPSHOT');
    const repo = await openRepository(global, { withIndex: true });
    const [left, right] = await Promise.all([repo.resolveSnapshot(a), repo.resolveSnapshot(b)]);
    for await (const { change, path } of diffTrees(repo, Buffer.from(left.snapshot.tree, 'hex'), Buffer.from(right.snapshot.tree, 'hex'), Buffer.alloc(0))) {
      if (global.json) printJson({ message_type: 'change', modifier: change, path: path.toString() });
      else process.stdout.write(`${change}    ${JSON.stringify(path.toString()).slice(1, -1)}\n`);
    }
    return 0;
  },
};
