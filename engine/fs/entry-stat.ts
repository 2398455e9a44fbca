import { constants } from 'node:fs';
import type { NodeType } from '../../repository/tree/tree.ts';

/**
 * The lstat fields a backup records or compares. An lstat taken with { bigint: true } has them
 * all; a directory listed in a worker sends them packed (packStat), because a message would clone
 * a whole Stats object field by field.
 */
export interface EntryStat {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint;
  readonly ctimeNs: bigint;
}

/** Unsigned fields first, then the times, which are signed (before 1970 is negative). */
const UNSIGNED = ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size'] as const;
const SIGNED = ['mtimeNs', 'atimeNs', 'ctimeNs'] as const;
/** Slots of a BigInt64Array one entry takes. */
export const STAT_SLOTS = UNSIGNED.length + SIGNED.length;

export function packStat(st: EntryStat, into: BigInt64Array, entry: number): void {
  let at = entry * STAT_SLOTS;
  for (const field of UNSIGNED) into[at++] = BigInt.asIntN(64, st[field]);
  for (const field of SIGNED) into[at++] = st[field];
}

export function unpackStat(from: BigInt64Array, entry: number): EntryStat {
  const at = entry * STAT_SLOTS;
  const u = (i: number): bigint => BigInt.asUintN(64, from[at + i] ?? 0n);
  const s = (i: number): bigint => from[at + UNSIGNED.length + i] ?? 0n;
  return { dev: u(0), ino: u(1), mode: u(2), nlink: u(3), uid: u(4), gid: u(5), rdev: u(6), size: u(7), mtimeNs: s(0), atimeNs: s(1), ctimeNs: s(2) };
}

const TYPE_BY_FORMAT: ReadonlyMap<number, NodeType> = new Map([
  [constants.S_IFREG, 'file'],
  [constants.S_IFDIR, 'dir'],
  [constants.S_IFLNK, 'symlink'],
  [constants.S_IFIFO, 'fifo'],
  [constants.S_IFSOCK, 'socket'],
  [constants.S_IFCHR, 'chardev'],
  [constants.S_IFBLK, 'blockdev'],
]);

export function nodeTypeOf(st: Pick<EntryStat, 'mode'>): NodeType {
  return TYPE_BY_FORMAT.get(Number(st.mode) & constants.S_IFMT) ?? 'blockdev';
}
