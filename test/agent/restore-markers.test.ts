import { lstat, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeJobError } from '../../agent/errors.ts';
import { clearRestoreMarkers, markRestored, markRestoreFailed } from '../../agent/restore-markers.ts';
import { volumeAndOutside } from './kubelet-layout.ts';

let root: string;
let volume: string;
let outside: string;
beforeEach(async () => {
  ({ root, volume, outside } = await volumeAndOutside('uid-1'));
  await writeFile(path.join(outside, 'passwd'), 'root:x:0:0\n');
});
afterEach(async () => { await rm(root, { recursive: true, force: true }); });

describe('restore markers', () => {
  it('writes the done marker where restore-wait looks, and removes a failed one from an earlier attempt', async () => {
    await markRestoreFailed(volume, 'r-1', 'first try failed');
    await markRestored(volume, 'r-1');
    expect(await readdir(path.join(volume, '.arca'))).toEqual(['r-1']);
  });

  it('writes the failed marker with the reason on one line', async () => {
    await markRestoreFailed(volume, 'r-1', 'Snapshot 0123abcd is not in repository default:\nwrong repository?');
    expect(await readFile(path.join(volume, '.arca', 'r-1.failed'), 'utf8')).toBe('Snapshot 0123abcd is not in repository default: wrong repository?\n');
  });

  it('clears both markers before a new attempt, and is fine with none there', async () => {
    await clearRestoreMarkers(volume, 'r-1');
    await markRestored(volume, 'r-1');
    await markRestoreFailed(volume, 'r-1', 'x');
    await clearRestoreMarkers(volume, 'r-1');
    expect(await readdir(path.join(volume, '.arca'))).toEqual([]);
  });

  it('replaces a .arca that is a symlink out of the volume instead of writing through it', async () => {
    await symlink(outside, path.join(volume, '.arca'));
    await markRestored(volume, 'r-1');
    expect((await lstat(path.join(volume, '.arca'))).isDirectory()).toBe(true);
    expect(await readdir(outside)).toEqual(['passwd']);
  });

  it('replaces a marker that is a symlink to a host file instead of writing through it', async () => {
    await mkdir(path.join(volume, '.arca'));
    await symlink(path.join(outside, 'passwd'), path.join(volume, '.arca', 'r-1.failed'));
    await markRestoreFailed(volume, 'r-1', 'reason');
    expect(await readFile(path.join(outside, 'passwd'), 'utf8')).toBe('root:x:0:0\n');
    expect(await readFile(path.join(volume, '.arca', 'r-1.failed'), 'utf8')).toBe('reason\n');
  });

  it('refuses a restore UID that is not one', async () => {
    for (const uid of ['../escape', '.hidden', '', 'a/b']) {
      await expect(markRestored(volume, uid)).rejects.toBeInstanceOf(VolumeJobError);
    }
    expect(await readdir(root)).toEqual(['outside', 'pods']);
  });
});
