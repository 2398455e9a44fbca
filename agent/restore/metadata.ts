import { promises as fsp } from 'node:fs';
import type { TreeNode } from '../../repository/tree/tree.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NS_PER_S = 1_000_000_000n;

/** Seconds as a float; Node's utimes takes no finer unit, so sub-microsecond digits are lost. */
function seconds(ns: bigint): number {
  return Number(ns / NS_PER_S) + Number(ns % NS_PER_S) / 1e9;
}

/** Ownership (as root), mode and times; symlinks get ownership and times of their own, never their target's. */
export async function applyMetadata(local: Buffer, node: TreeNode): Promise<void> {
  if (isRoot) await fsp.lchown(local, node.uid, node.gid);
  if (node.type !== 'symlink') await fsp.chmod(local, node.mode);
  await fsp.lutimes(local, seconds(node.atimeNs), seconds(node.mtimeNs));
}
