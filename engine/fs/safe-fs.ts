import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, promises as fsp, rmSync, unlinkSync } from 'node:fs';
import { promisify } from 'node:util';

/**
 * File-system steps of a restore that never follow a symlink found in the target: whatever is
 * already at a path we restore is replaced, not written through. Directories are created top-down
 * by us and checked with lstat, files are opened with O_NOFOLLOW.
 * Node has no openat(2), so a process racing us inside the target between the check and the open
 * is out of scope; the agent restores before the pod's containers start.
 *
 * Directories and files are made with synchronous calls: each takes microseconds on a local disk,
 * where a promise round trip through libuv's thread pool cost the restore's main thread several
 * times that per call, for tens of thousands of calls. Files are created by the pool's workers.
 */
const run = promisify(execFile);

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}

/** Removes whatever non-directory is at `p` (a planted symlink, a file), leaving directories alone. */
async function clearNonDirectory(p: Buffer): Promise<void> {
  const st = await fsp.lstat(p).catch(() => undefined);
  if (st && !st.isDirectory()) await fsp.unlink(p);
}

/** Makes `p` a real directory (not a symlink to one). */
export function ensureDirectory(p: Buffer): void {
  try {
    mkdirSync(p, { mode: 0o700 });
    return;
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  if (lstatSync(p).isDirectory()) return;
  unlinkSync(p);
  mkdirSync(p, { mode: 0o700 });
}

/** O_NONBLOCK: a FIFO planted where a file goes must fail the open (ENXIO), not hang it. */
const WRITE_FLAGS = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `p` for writing as a new, empty regular file: whatever was there (a planted symlink, a
 * device, a file, a directory) is replaced, never written through. Returns the descriptor.
 */
export function openNewFile(p: Buffer): number {
  try {
    // The common case, an empty target: O_EXCL makes a new regular file or fails, nothing else.
    return openSync(p, WRITE_FLAGS | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
    return replaceExisting(p);
  }
}

/** Creates (or truncates) a regular file of `size` bytes, holes included, replacing any symlink. */
export function createFile(p: Buffer, size: number): void {
  const fd = openNewFile(p);
  try {
    if (size > 0) ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** Something is already at `p`: a file is truncated; anything else (a planted link or device) goes. */
function replaceExisting(p: Buffer): number {
  const existing = lstatSync(p);
  if (existing.isDirectory()) rmSync(p, { recursive: true });
  else if (!existing.isFile()) unlinkSync(p);
  const fd = openSync(p, WRITE_FLAGS | constants.O_CREAT | constants.O_TRUNC, 0o600);
  // Between the lstat and the open the path could have been swapped; O_NOFOLLOW covers links, this the rest.
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error('not a regular file');
  }
  return fd;
}

export async function createSymlink(p: Buffer, target: Buffer): Promise<void> {
  await clearNonDirectory(p);
  await fsp.symlink(target, p);
}

export async function createHardlink(existing: Buffer, p: Buffer): Promise<void> {
  await clearNonDirectory(p);
  await fsp.link(existing, p);
}

/** FIFOs and device files: Node has no mknod(2), so the coreutils commands do it. */
export async function createSpecial(p: Buffer, type: 'fifo' | 'chardev' | 'blockdev', rdev: bigint): Promise<void> {
  await clearNonDirectory(p);
  const name = p.toString('utf8');
  if (Buffer.from(name).equals(p)) {
    await makeSpecial(name, type, rdev);
    return;
  }
  // Command arguments are strings: a path that is not UTF-8 is made under a temporary name in
  // the nearest directory on it whose path is (at worst the target), then renamed into place.
  let dir = p.subarray(0, Math.max(p.lastIndexOf(0x2f), 0));
  while (dir.length > 0 && !Buffer.from(dir.toString('utf8')).equals(dir)) dir = dir.subarray(0, Math.max(dir.lastIndexOf(0x2f), 0));
  const temporary = `${dir.toString('utf8')}/.arca-special-${randomBytes(8).toString('hex')}`;
  await makeSpecial(temporary, type, rdev);
  try {
    await fsp.rename(temporary, p);
  } catch (err) {
    await fsp.unlink(temporary).catch(() => undefined);
    throw err;
  }
}

async function makeSpecial(name: string, type: 'fifo' | 'chardev' | 'blockdev', rdev: bigint): Promise<void> {
  if (type === 'fifo') {
    await run('mkfifo', ['-m', '600', '--', name]);
    return;
  }
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  await run('mknod', ['-m', '600', '--', name, type === 'chardev' ? 'c' : 'b', major.toString(), minor.toString()]);
}
