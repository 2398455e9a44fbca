import { createHash } from 'node:crypto';
import { promises as fsp, type BigIntStats } from 'node:fs';
import { nodeTypeOf } from '../../engine/fs/entry-stat.ts';

/**
 * A byte-exact picture of a directory tree, for comparing a source with its restore. Names are
 * read as Buffers (never decoded), so non-UTF-8 names compare exactly.
 */
export interface ScannedEntry {
  readonly type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';
  /** The full st_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** File size; 0 for everything else (directory sizes depend on the filesystem). */
  readonly size: number;
  /** Modification time floored to whole microseconds (Node's utimes cannot set finer). */
  readonly mtimeUs: bigint;
  /** sha256 of a regular file's content. */
  readonly sha256?: string;
  /** A symlink's target, escaped like names. */
  readonly linkTarget?: string;
  /** A device's st_rdev. */
  readonly rdev?: bigint;
  /** For files with several links: st_nlink and the other names of the inode inside the tree. */
  readonly nlink?: number;
  readonly sameInodeAs?: readonly string[];
}

/**
 * Escapes a byte string to a unique, readable JS string: printable ASCII stays, a backslash and
 * every other byte become \xNN. Two different byte strings never escape to the same string.
 */
export function escapeBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}


async function sha256Of(file: Buffer): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fsp.open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

const SLASH = Buffer.from('/');

/** Nanoseconds to whole microseconds, rounding down (also before 1970, where `/` would round up). */
export function floorMicros(ns: bigint): bigint {
  return ns >= 0n ? ns / 1000n : -((-ns + 999n) / 1000n);
}

/**
 * Every entry under `root` (the root itself as "."), keyed by its escaped relative path.
 * Symlinks are never followed; file contents are hashed.
 */
export async function scanTree(root: string | Buffer): Promise<Map<string, ScannedEntry>> {
  const rootBuf = Buffer.isBuffer(root) ? root : Buffer.from(root);
  const raw: Array<{ rel: string; st: BigIntStats; entry: Omit<ScannedEntry, 'sameInodeAs' | 'nlink'> }> = [];
  const visit = async (abs: Buffer, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    const type = nodeTypeOf(st);
    const base = { type, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: type === 'file' ? Number(st.size) : 0, mtimeUs: floorMicros(st.mtimeNs) };
    switch (type) {
      case 'file':
        raw.push({ rel, st, entry: { ...base, sha256: await sha256Of(abs) } });
        break;
      case 'symlink':
        raw.push({ rel, st, entry: { ...base, linkTarget: escapeBytes(await fsp.readlink(abs, { encoding: 'buffer' })) } });
        break;
      case 'chardev':
      case 'blockdev':
        raw.push({ rel, st, entry: { ...base, rdev: st.rdev } });
        break;
      case 'dir': {
        raw.push({ rel, st, entry: base });
        const names = await fsp.readdir(abs, { encoding: 'buffer' });
        for (const name of names) await visit(Buffer.concat([abs, SLASH, name]), rel === '.' ? escapeBytes(name) : `${rel}/${escapeBytes(name)}`);
        break;
      }
      default:
        raw.push({ rel, st, entry: base });
    }
  };
  await visit(rootBuf, '.');
  const byInode = new Map<string, string[]>();
  for (const { rel, st } of raw) {
    if (!st.isDirectory() && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      byInode.set(key, [...(byInode.get(key) ?? []), rel]);
    }
  }
  const result = new Map<string, ScannedEntry>();
  for (const { rel, st, entry } of raw) {
    if (st.isDirectory() || st.nlink <= 1n) {
      result.set(rel, entry);
      continue;
    }
    const others = (byInode.get(`${st.dev}:${st.ino}`) ?? []).filter((p) => p !== rel).sort();
    result.set(rel, { ...entry, nlink: Number(st.nlink), sameInodeAs: others });
  }
  return result;
}

/** The scan as a plain sorted object, so that `toEqual` prints a readable difference. */
export function asObject(scan: ReadonlyMap<string, ScannedEntry>): Record<string, ScannedEntry> {
  return Object.fromEntries([...scan].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
