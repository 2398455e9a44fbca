import { promises as fsp } from 'node:fs';
import type { TreeNode } from '../../repository/tree/tree.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NS_PER_S = 1_000_000_000n;

function floorToMicros(ns: bigint): bigint {
  return ns - (((ns % 1000n) + 1000n) % 1000n);
}

/** Exact decimal seconds, e.g. "-1.000000500". */
function decimalSeconds(ns: bigint): string {
  const abs = ns < 0n ? -ns : ns;
  return `${ns < 0n ? '-' : ''}${abs / NS_PER_S}.${(abs % NS_PER_S).toString().padStart(9, '0')}`;
}

/** The time libuv sets for a float of seconds: it cuts the fraction toward zero to nanoseconds. */
function timeSetFor(seconds: number): bigint {
  const whole = Math.trunc(seconds);
  return BigInt(whole) * NS_PER_S + BigInt(Math.trunc((seconds - whole) * 1e9));
}

/**
 * A time for Node's utimes, as a numeric string of seconds: Node replaces negative numbers
 * (times before 1970) with "now", but passes numeric strings on. The value goes through a float,
 * which cannot hold every nanosecond: the exact time when its float lands in the same
 * microsecond, else the middle of that microsecond, which float error cannot push out of it.
 */
export function utimeSeconds(ns: bigint): string {
  const exact = decimalSeconds(ns);
  if (floorToMicros(timeSetFor(Number(exact))) === floorToMicros(ns)) return exact;
  return decimalSeconds(floorToMicros(ns) + 500n);
}

/** Ownership (as root), mode and times; symlinks get ownership and times of their own, never their target's. */
export async function applyMetadata(local: Buffer, node: TreeNode): Promise<void> {
  if (isRoot) await fsp.lchown(local, node.uid, node.gid);
  if (node.type !== 'symlink') await fsp.chmod(local, node.mode);
  await fsp.lutimes(local, utimeSeconds(node.atimeNs), utimeSeconds(node.mtimeNs));
}
