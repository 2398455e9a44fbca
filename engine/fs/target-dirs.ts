import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { ArcaError } from '../../repository/errors.ts';
import { atPath } from './handles.ts';

/**
 * Directories of a restore target reached by handles: each component of a path below the
 * target opened with O_NOFOLLOW inside the handle of the one above it (handles.ts), so that
 * nothing a process sharing the target renames or swaps meanwhile can make a restore create,
 * write, change or delete anything outside it. One resolver serves one batch of work in one
 * thread and is closed after it; it holds at most `capacity` directories open.
 */
export class TargetDirs {
  private readonly rootFd: number;
  private readonly capacity: number;
  /** Open directories by path below the target ('' is the target), least recently used first. */
  private readonly open = new Map<string, number>();

  constructor(rootFd: number, capacity = 32) {
    this.rootFd = rootFd;
    this.capacity = Math.max(2, capacity);
  }

  /** The handle of the directory `rel` (components joined by "/", '' for the target itself). */
  dir(rel: Buffer): number {
    if (rel.length === 0) return this.rootFd;
    const key = rel.toString('latin1');
    const cached = this.open.get(key);
    if (cached !== undefined) {
      this.open.delete(key);
      this.open.set(key, cached);
      return cached;
    }
    const { parent, name } = splitPath(rel);
    const parentFd = this.dir(parent);
    let fd: number;
    try {
      fd = openSync(atPath(parentFd, name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new NotADirectoryError(rel);
      throw err;
    }
    this.open.set(key, fd);
    if (this.open.size > this.capacity) {
      const [oldest, oldestFd] = this.open.entries().next().value as [string, number];
      this.open.delete(oldest);
      closeSync(oldestFd);
    }
    return fd;
  }

  /** Where the entry `rel` is: its directory's handle and its name. */
  entry(rel: Buffer): { dirFd: number; name: Buffer; at: Buffer } {
    const { parent, name } = splitPath(rel);
    const dirFd = this.dir(parent);
    return { dirFd, name, at: atPath(dirFd, name) };
  }

  /** Forgets the directory `rel` and everything below it (it was removed or replaced). */
  forget(rel: Buffer): void {
    const key = rel.toString('latin1');
    for (const [k, fd] of this.open) {
      if (k === key || k.startsWith(`${key}/`)) {
        this.open.delete(k);
        closeSync(fd);
      }
    }
  }

  close(): void {
    for (const fd of this.open.values()) closeSync(fd);
    this.open.clear();
  }
}

/** Something that is not a directory (a symlink, a file) stands on the way to a path being restored. */
export class NotADirectoryError extends ArcaError {
  constructor(rel: Buffer) {
    super('ARCA_ERR_NOT_A_DIRECTORY', `${rel.toString()} in the target is not a directory (a symlink or file stands there); nothing was written through it`);
  }
}

function splitPath(rel: Buffer): { parent: Buffer; name: Buffer } {
  const slash = rel.lastIndexOf(0x2f);
  return slash < 0 ? { parent: Buffer.alloc(0), name: rel } : { parent: rel.subarray(0, slash), name: rel.subarray(slash + 1) };
}

/**
 * Removes the entry `name` of the directory open as `dirFd`, a directory with everything in it:
 * each subdirectory opened through its parent's handle with O_NOFOLLOW, so a symlink swapped
 * in meanwhile fails the removal instead of leading it outside.
 */
export function removeEntry(dirFd: number, name: Buffer): void {
  const at = atPath(dirFd, name);
  if (!lstatSync(at).isDirectory()) {
    unlinkSync(at);
    return;
  }
  const fd = openSync(at, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isDirectory()) throw new ArcaError('ARCA_ERR_ENTRY_CHANGED', `${name.toString()} changed while it was removed`);
    for (const child of readdirSync(atPath(fd), { encoding: 'buffer' })) removeEntry(fd, child);
  } finally {
    closeSync(fd);
  }
  rmdirSync(at);
}
