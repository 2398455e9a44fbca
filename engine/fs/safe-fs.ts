import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, symlinkSync, unlinkSync, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { ArcaError } from '../../repository/errors.ts';
import type { NodeType } from '../../repository/tree/tree.ts';
import { atPath } from './handles.ts';
import { removeEntry, type TargetDirs } from './target-dirs.ts';

/**
 * File-system steps of a restore, every one through the target's directory handles
 * (TargetDirs): nothing found in the target (a planted symlink, a directory swapped for one
 * meanwhile) is ever followed, so a restore into a volume a running pod shares writes nothing
 * outside it. What already stands where the snapshot puts something is dealt with by the
 * rules (Conflicts): a directory is never replaced by a non-directory, nor a regular file by a
 * directory, unless `delete` allows it.
 *
 * The steps are synchronous: each takes microseconds on a local disk, where a promise round trip
 * through libuv's thread pool cost several times that, for tens of thousands of calls. Most run
 * in the pool's workers.
 */
const run = promisify(execFile);

/** restic 0.17's choices for existing regular files (see docs/cli.md, restore). */
export type Overwrite = 'always' | 'if-changed' | 'if-newer' | 'never';
export const OVERWRITE_CHOICES: readonly Overwrite[] = ['always', 'if-changed', 'if-newer', 'never'];

export interface Conflicts {
  readonly overwrite: Overwrite;
  /** Replace a directory by a non-directory or a regular file by a directory, and remove what the snapshot does not have. */
  readonly delete: boolean;
}

/** A directory where the snapshot has something else, or a regular file where it has a directory. */
export class TypeConflictError extends ArcaError {
  constructor(rel: Buffer, found: string, wanted: string) {
    super('ARCA_ERR_TYPE_CONFLICT', `${rel.toString()} is ${found} in the target where the snapshot has ${wanted}; it was left alone (restore with --delete to replace it)`);
  }
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}

function lstatOrNone(at: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(at, { bigint: true });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

const ARTICLE: Readonly<Record<NodeType, string>> = {
  file: 'a file', dir: 'a directory', symlink: 'a symlink', fifo: 'a FIFO', socket: 'a socket', chardev: 'a device', blockdev: 'a device',
};

/**
 * Makes `rel` a real directory; whether it was there already. A symlink or special file in its
 * place is replaced (unless overwrite is never); a regular file only with `delete`.
 */
export function ensureDirectory(dirs: TargetDirs, rel: Buffer, rules: Conflicts): 'made' | 'existed' {
  const { dirFd, name, at } = dirs.entry(rel);
  try {
    mkdirSync(at, { mode: 0o700 });
    return 'made';
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  const st = lstatSync(at);
  if (st.isDirectory()) return 'existed';
  if ((st.isFile() && !rules.delete) || rules.overwrite === 'never') throw new TypeConflictError(rel, st.isFile() ? 'a file' : 'something else', 'a directory');
  removeEntry(dirFd, name);
  mkdirSync(at, { mode: 0o700 });
  return 'made';
}

/** What a restore does with what stands where a node goes, in a directory that existed before. */
export type Verdict = 'absent' | 'replace' | 'unchanged' | 'leave';

/**
 * Decides, by the rules, what happens to whatever stands at `rel` where the snapshot has a
 * node of type `want` (not a directory): a directory there is removed only with `delete`; a
 * regular file where a file goes follows `overwrite` (`sameContent` tells if-changed whether it
 * already holds the snapshot's content); anything else is replaced unless overwrite is never.
 */
export function inspectExisting(
  dirs: TargetDirs, rel: Buffer, want: { type: NodeType; size: number; mtimeNs: bigint }, rules: Conflicts, sameContent: (at: Buffer) => boolean,
): Verdict {
  const { dirFd, name, at } = dirs.entry(rel);
  const st = lstatOrNone(at);
  if (st === undefined) return 'absent';
  if (st.isDirectory()) {
    if (!rules.delete) throw new TypeConflictError(rel, 'a directory', ARTICLE[want.type]);
    removeEntry(dirFd, name);
    dirs.forget(rel);
    return 'absent';
  }
  if (rules.overwrite === 'never') return 'leave';
  if (want.type !== 'file' || !st.isFile()) return 'replace';
  switch (rules.overwrite) {
    case 'always': return 'replace';
    case 'if-newer': return st.mtimeNs < want.mtimeNs ? 'replace' : 'leave';
    case 'if-changed': return st.size === BigInt(want.size) && sameContent(at) ? 'unchanged' : 'replace';
  }
}

/** O_NONBLOCK: a FIFO planted where a file goes must fail the open (ENXIO), not hang it. */
const WRITE_FLAGS = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `rel` for writing as a new, empty regular file: a non-directory standing there (a
 * planted symlink, a device, an older file) is unlinked first, so nothing is written through it
 * (nor through a hard link to a file elsewhere). Returns the descriptor.
 */
export function openNewFile(dirs: TargetDirs, rel: Buffer): number {
  const { at } = dirs.entry(rel);
  const create = (): number => openSync(at, WRITE_FLAGS | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    return create();
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  clearNonDirectory(at, rel, 'a file');
  return create();
}

/** Creates a regular file of `size` bytes, holes included (see openNewFile). */
export function createFile(dirs: TargetDirs, rel: Buffer, size: number): void {
  const fd = openNewFile(dirs, rel);
  try {
    if (size > 0) ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** Unlinks the non-directory at `at`; a directory there (one that appeared meanwhile) is a conflict. */
function clearNonDirectory(at: Buffer, rel: Buffer, wanted: string): void {
  const st = lstatOrNone(at);
  if (st?.isDirectory()) throw new TypeConflictError(rel, 'a directory', wanted);
  if (st) unlinkSync(at);
}

/** Runs `make(at)`, which fails with EEXIST when something stands there; that is then replaced once. */
function replacing(dirs: TargetDirs, rel: Buffer, wanted: string, make: (at: Buffer) => void): void {
  const { at } = dirs.entry(rel);
  try {
    make(at);
    return;
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  clearNonDirectory(at, rel, wanted);
  make(at);
}

export function createSymlink(dirs: TargetDirs, rel: Buffer, target: Buffer): void {
  replacing(dirs, rel, 'a symlink', (at) => { symlinkSync(target, at); });
}

/** A hard link at `rel` to the restored file at `existing`; link(2) never follows a symlink at `existing`. */
export function createHardlink(dirs: TargetDirs, existing: Buffer, rel: Buffer): void {
  const from = dirs.entry(existing).at;
  replacing(dirs, rel, 'a file', (at) => { linkSync(from, at); });
}

/**
 * FIFOs and device files: Node has no mknod(2), so the coreutils commands make one under a
 * temporary name in the right directory, reached by the child through this process's handle,
 * and it is renamed into place.
 */
export async function createSpecial(dirs: TargetDirs, rel: Buffer, type: 'fifo' | 'chardev' | 'blockdev', rdev: bigint): Promise<void> {
  const { dirFd, at } = dirs.entry(rel);
  const temporary = Buffer.from(`.arca-special-${randomBytes(8).toString('hex')}`);
  const forChild = `/proc/${process.pid}/fd/${dirFd}/${temporary.toString()}`;
  if (type === 'fifo') await run('mkfifo', ['-m', '600', '--', forChild]);
  else {
    const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
    const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
    await run('mknod', ['-m', '600', '--', forChild, type === 'chardev' ? 'c' : 'b', major.toString(), minor.toString()]);
  }
  try {
    clearNonDirectory(at, rel, ARTICLE[type]);
    renameSync(atPath(dirFd, temporary), at);
  } catch (err) {
    try {
      unlinkSync(atPath(dirFd, temporary));
    } catch {
      // Gone already.
    }
    throw err;
  }
}
