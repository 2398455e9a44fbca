import { closeSync, constants, fstatSync, openSync, type BigIntStats } from 'node:fs';
import { ArcaError } from '../../repository/errors.ts';

/**
 * Walking a tree by directory handles instead of paths, so that no rename or symlink swap
 * anywhere in it can make a backup read, or a restore write, outside it.
 *
 * Node has no openat(2). On Linux, `/proc/self/fd/<fd>/<name>` is resolved by the kernel from
 * the directory that descriptor holds open, whatever has been renamed or replaced above it
 * since: the magic link is the open directory itself, not a path walked again. With O_NOFOLLOW
 * on the last component, that is openat(fd, name, O_NOFOLLOW). The descriptor table is the
 * process's, so worker threads use the main thread's handles the same way. A path through a
 * handle is short whatever the depth of the tree, so trees deeper than PATH_MAX work too.
 * (Measured: an open through a handle costs ~0.5 µs more than one by absolute path, an lstat
 * the same; a native openat2 addon would need a build step and a dependency for no gain we can measure.)
 */

/** Opening a directory: never through a symlink, and never blocking. */
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Opening a file to read: never through a symlink; a FIFO or device opens without blocking. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const PROC_FD = '/proc/self/fd/';

/** The path the kernel resolves inside the directory open as `dirFd`: that directory when `name` is absent. */
export function atPath(dirFd: number, name?: Uint8Array): Buffer {
  const dir = Buffer.from(`${PROC_FD}${dirFd}`);
  return name === undefined ? dir : Buffer.concat([dir, SLASH, name]);
}

const SLASH = Buffer.from('/');

/** What identifies a file system object while it exists: its device and inode numbers. */
export interface Identity {
  readonly dev: bigint;
  readonly ino: bigint;
}

/** An entry that is no longer what its directory's listing named (a rename or swap in between). */
export class EntryChangedError extends ArcaError {
  constructor(what: string) {
    super('ARCA_ERR_ENTRY_CHANGED', `${what} was replaced by another process (renamed or swapped) while Arca worked on it; it was skipped`);
  }
}

function check(fd: number, expected: Identity | undefined, want: (st: BigIntStats) => boolean, what: string): BigIntStats {
  const st = fstatSync(fd, { bigint: true });
  if (!want(st) || (expected !== undefined && (st.dev !== expected.dev || st.ino !== expected.ino))) {
    closeSync(fd);
    throw new EntryChangedError(what);
  }
  return st;
}

function openChecked(path: Buffer, flags: number, what: string): number {
  try {
    return openSync(path, flags);
  } catch (err) {
    // A symlink now stands where the listing saw a directory or file (O_NOFOLLOW).
    if ((err as NodeJS.ErrnoException).code === 'ELOOP' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new EntryChangedError(what);
    throw err;
  }
}

/**
 * Opens the directory `name` inside the directory open as `parentFd`, and checks that it is the
 * directory `expected` (from the parent's listing) names. Returns its descriptor.
 */
export function openDirAt(parentFd: number, name: Uint8Array, expected: Identity | undefined): number {
  const fd = openChecked(atPath(parentFd, name), DIR_FLAGS, 'the directory');
  check(fd, expected, (st) => st.isDirectory(), 'the directory');
  return fd;
}

/** Opens a directory given by path (a root the user named: its own path is followed as given). */
export function openDirPath(path: string | Buffer, expected: Identity | undefined): number {
  const fd = openChecked(Buffer.isBuffer(path) ? path : Buffer.from(path), DIR_FLAGS, 'the directory');
  check(fd, expected, (st) => st.isDirectory(), 'the directory');
  return fd;
}

/**
 * Opens for reading the regular file at `path` (a path through a handle, atPath), checked to be
 * the file `expected` names; returns the descriptor and its fstat.
 */
export function openFileChecked(path: Buffer, expected: Identity): { fd: number; st: BigIntStats } {
  const fd = openChecked(path, READ_FLAGS, 'the file');
  return { fd, st: check(fd, expected, (st) => st.isFile(), 'the file') };
}
