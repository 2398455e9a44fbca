import type { Repository } from '../repository.ts';
import type { TreeNode } from './tree.ts';

export interface WalkedNode {
  /** Path inside the snapshot, "/"-separated, raw bytes. */
  readonly path: Buffer;
  readonly node: TreeNode;
}

/** Every node under `treeId`, depth first, parents before children, names in byte order. */
export async function* walkTree(repo: Repository, treeId: Buffer, prefix: Buffer = Buffer.alloc(0)): AsyncGenerator<WalkedNode> {
  const tree = await repo.loadTree(treeId);
  for (const node of tree.nodes) {
    const path = Buffer.concat([prefix, Buffer.from('/'), node.name]);
    yield { path, node };
    if (node.type === 'dir') yield* walkTree(repo, node.subtree, path);
  }
}
