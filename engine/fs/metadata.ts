import { chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, fstatSync, futimesSync, lchownSync, lutimesSync, openSync, utimesSync } from 'node:fs';
import type { RootDirMeta } from '../../repository/snapshot/snapshot.ts';
import type { TreeNode } from '../../repository/tree/tree.ts';
import { EntryChangedError, openDirPath } from './handles.ts';
import type { TargetDirs } from './target-dirs.ts';

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

/** What a restore sets on one node, in a form that can be sent to a worker thread. */
export interface NodeMetadata {
  /** Path below the restore target (TargetDirs). */
  readonly path: Uint8Array;
  /** Symlinks get ownership and times of their own, never their target's, and no mode. */
  readonly symlink: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  /** Seconds as exact numeric strings (utimeSeconds). */
  readonly atime: string;
  readonly mtime: string;
}

export function metadataOf(local: Buffer, node: TreeNode): NodeMetadata {
  return {
    path: local, symlink: node.type === 'symlink', uid: node.uid, gid: node.gid, mode: node.mode,
    atime: utimeSeconds(node.atimeNs), mtime: utimeSeconds(node.mtimeNs),
  };
}

/** Linux's O_PATH: a handle on the node itself (a device is not opened), for the calls below. */
const O_PATH = 0o10000000;

/**
 * Ownership (as root), mode and times, never through a symlink. A symlink gets lchown and
 * lutimes by its name in its directory's handle; anything else is first pinned with an
 * O_PATH|O_NOFOLLOW handle and changed through /proc/self/fd/N, which names that very node
 * (glibc's lchmod does the same), so a swap after the check cannot redirect chmod or chown.
 */
export function applyMetadata(dirs: TargetDirs, meta: NodeMetadata): void {
  const { at } = dirs.entry(Buffer.from(meta.path.buffer, meta.path.byteOffset, meta.path.byteLength));
  if (meta.symlink) {
    if (isRoot) lchownSync(at, meta.uid, meta.gid);
    lutimesSync(at, meta.atime, meta.mtime);
    return;
  }
  const fd = openSync(at, O_PATH | constants.O_NOFOLLOW);
  try {
    if (fstatSync(fd).isSymbolicLink()) throw new EntryChangedError('the restored entry');
    const node = `/proc/self/fd/${fd}`;
    if (isRoot) chownSync(node, meta.uid, meta.gid);
    chmodSync(node, meta.mode);
    // Numeric strings: Node turns negative numbers (before 1970) into "now", but passes these on.
    utimesSync(node, meta.atime, meta.mtime);
  } finally {
    closeSync(fd);
  }
}

/**
 * Gives a restore's target the metadata of a snapshot's root directory (Snapshot.root), through
 * a handle on it. Last, after everything inside it is restored, which changes its times.
 */
export function applyRootMetadata(target: string, root: RootDirMeta): void {
  const fd = openDirPath(target, undefined);
  try {
    if (isRoot) fchownSync(fd, root.uid, root.gid);
    fchmodSync(fd, root.mode);
    futimesSync(fd, utimeSeconds(BigInt(root.atime)), utimeSeconds(BigInt(root.mtime)));
  } finally {
    closeSync(fd);
  }
}
