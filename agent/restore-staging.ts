/**
 * A snapshot of a pod volume holds the volume under the path it had on the backup's node
 * (`/host_pods/<old-uid>/volumes/...`), so a restore lands in a staging directory inside the new
 * volume (same file system: moving is a rename) and its subtree is then moved to the volume's
 * root. Every move checks the destination with lstat and never descends through a symlink, so
 * nothing is written outside the volume whatever the volume or the snapshot held.
 */
import { lchown, lstat, lutimes, chmod, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { BigIntStats } from 'node:fs';
import { utimeSeconds } from '../engine/fs/metadata.ts';
import { VolumeJobError } from './errors.ts';
import { MARKER_DIR } from '../kube/api/restore-markers.ts';
import { assertRestoreUid, markerDir } from './restore-markers.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A fresh staging directory for one restore attempt, inside the volume's marker directory. */
export async function makeStagingDir(volumeDir: string, restoreUid: string): Promise<string> {
  assertRestoreUid(restoreUid);
  const staging = path.join(await markerDir(volumeDir), `staging-${restoreUid}`);
  await rm(staging, { recursive: true, force: true });
  return staging;
}

export async function removeStagingDir(staging: string): Promise<void> {
  await rm(staging, { recursive: true, force: true });
}

/**
 * Where the restored volume sits in the staging directory: the snapshot's one path, checked to be
 * a plain absolute path (no `..`), and a real directory reached through no symlink.
 */
export async function stagedVolumeDir(staging: string, snapshotPaths: readonly string[], snapshotId: string): Promise<string> {
  const [only, ...more] = snapshotPaths;
  if (only === undefined || more.length > 0) {
    throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `Snapshot ${snapshotId.slice(0, 8)} holds ${snapshotPaths.length} paths; a volume restore needs the snapshot of one volume.`);
  }
  const segments = only.split('/').filter((s) => s !== '');
  if (!only.startsWith('/') || segments.some((s) => s === '.' || s === '..')) {
    throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `Snapshot ${snapshotId.slice(0, 8)} has the path "${only}", which is not a plain absolute path; refusing to restore it.`);
  }
  let dir = staging;
  for (const segment of segments) {
    dir = path.join(dir, segment);
    const st = await lstat(dir).catch(() => undefined);
    if (st?.isDirectory() !== true) {
      throw new VolumeJobError('ARCA_AGENT_PATH_ESCAPE', `Snapshot ${snapshotId.slice(0, 8)} restored no directory at its path ${only}; refusing to use it.`);
    }
  }
  return dir;
}

/**
 * Moves the restored tree `from` into `volumeDir`, merging with what is there: a file or link in
 * the way is replaced, a directory on both sides is merged, and directories take the snapshot's
 * ownership, mode and times once their content is in. The volume's own `.arca` (markers, staging)
 * stays as it is; a `.arca` in the snapshot is left out.
 */
export async function moveIntoVolume(from: string, volumeDir: string): Promise<void> {
  await mergeDir(from, volumeDir, (name) => name === MARKER_DIR);
}

async function mergeDir(from: string, to: string, skip: (name: string) => boolean): Promise<void> {
  // Taken before the moves, which change `from`'s times.
  const meta = await lstat(from, { bigint: true });
  for (const name of await readdir(from)) {
    if (skip(name)) continue;
    const src = path.join(from, name);
    const dst = path.join(to, name);
    const [srcStat, dstStat] = await Promise.all([lstat(src), lstat(dst).catch(() => undefined)]);
    if (srcStat.isDirectory() && dstStat?.isDirectory() === true) {
      await mergeDir(src, dst, () => false);
      await rmdir(src);
      continue;
    }
    if (dstStat !== undefined) await rm(dst, { recursive: true, force: true });
    await rename(src, dst);
  }
  await copyDirMetadata(meta, to);
}

async function copyDirMetadata(st: BigIntStats, dir: string): Promise<void> {
  if (isRoot) await lchown(dir, Number(st.uid), Number(st.gid));
  await chmod(dir, Number(st.mode & 0o7777n));
  await lutimes(dir, utimeSeconds(st.atimeNs), utimeSeconds(st.mtimeNs));
}
