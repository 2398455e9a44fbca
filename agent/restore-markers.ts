/**
 * The markers `arca restore-wait` (the pod's init container) waits for: `<volume>/.arca/<uid>` once
 * the volume is restored, `<volume>/.arca/<uid>.failed` holding the reason if it could not be. The
 * volume's content is the snapshot's, so nothing in it is trusted: a `.arca` that is a symlink or
 * a file is replaced, and markers are written under a fresh name and renamed into place, so no
 * write follows a link out of the volume and the waiter never reads half a reason.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isRestoreUid, MARKER_DIR } from '../kube/api/restore-markers.ts';
import { VolumeJobError } from './errors.ts';

export function assertRestoreUid(uid: string): void {
  if (!isRestoreUid(uid)) throw new VolumeJobError('ARCA_AGENT_BAD_NAME', `The restore UID "${uid}" is not one (letters, digits, '.', '_' and '-', not starting with a symbol).`);
}

/** `<volume>/.arca` as a real directory of the volume, made (or remade) if it is not one. */
export async function markerDir(volumeDir: string): Promise<string> {
  const dir = path.join(volumeDir, MARKER_DIR);
  const st = await lstat(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  });
  if (st?.isDirectory() === true) return dir;
  if (st !== undefined) await unlink(dir);
  await mkdir(dir, { mode: 0o755 });
  return dir;
}

async function writeMarker(volumeDir: string, name: string, text: string): Promise<void> {
  const dir = await markerDir(volumeDir);
  const temp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx' is O_CREAT|O_EXCL: it fails on anything already there, a symlink included.
  await writeFile(temp, text, { flag: 'wx', mode: 0o644 });
  try {
    await rename(temp, path.join(dir, name));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** The volume is restored: the done marker, and no failed one left from an earlier attempt. */
export async function markRestored(volumeDir: string, restoreUid: string): Promise<void> {
  assertRestoreUid(restoreUid);
  await rm(path.join(volumeDir, MARKER_DIR, `${restoreUid}.failed`), { force: true });
  await writeMarker(volumeDir, restoreUid, '');
}

/** The restore failed: `reason` (one line) is what the pod's init container prints. */
export async function markRestoreFailed(volumeDir: string, restoreUid: string, reason: string): Promise<void> {
  assertRestoreUid(restoreUid);
  await writeMarker(volumeDir, `${restoreUid}.failed`, `${reason.replaceAll('\n', ' ').trim()}\n`);
}

/** Before a (new) attempt: no marker of this restore, so the waiter cannot see an old verdict. */
export async function clearRestoreMarkers(volumeDir: string, restoreUid: string): Promise<void> {
  assertRestoreUid(restoreUid);
  const dir = path.join(volumeDir, MARKER_DIR);
  if ((await lstat(dir).catch(() => undefined))?.isDirectory() !== true) return;
  await rm(path.join(dir, restoreUid), { force: true });
  await rm(path.join(dir, `${restoreUid}.failed`), { force: true });
}
