import { chmod, lstat, mkdir, readFile, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeJobError } from '../../agent/errors.ts';
import { makeStagingDir, moveIntoVolume, removeStagingDir, stagedVolumeDir } from '../../agent/restore-staging.ts';
import { volumeAndOutside } from './kubelet-layout.ts';

const SNAPSHOT = 'ab'.repeat(32);
const OLD_PATH = '/host_pods/old-uid/volumes/kubernetes.io~empty-dir/data';

let root: string;
let volume: string;
let outside: string;
beforeEach(async () => {
  ({ root, volume, outside } = await volumeAndOutside('new-uid'));
});
afterEach(async () => { await rm(root, { recursive: true, force: true }); });

/** What a restore of a snapshot of OLD_PATH leaves in the staging directory. */
async function stageSnapshot(staging: string): Promise<string> {
  const dir = path.join(staging, OLD_PATH);
  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await mkdir(path.join(dir, 'merged'), { recursive: true });
  await mkdir(path.join(dir, '.arca'), { recursive: true });
  await writeFile(path.join(dir, 'top.txt'), 'top');
  await writeFile(path.join(dir, 'sub', 'deeper', 'file'), 'deep');
  await writeFile(path.join(dir, 'merged', 'new'), 'new');
  await writeFile(path.join(dir, '.arca', 'r-1'), 'a done marker in the snapshot must not count');
  await symlink('/etc/passwd', path.join(dir, 'link'));
  await chmod(path.join(dir, 'merged'), 0o750);
  await utimes(path.join(dir, 'merged'), 1_600_000_000, 1_600_000_000);
  await chmod(dir, 0o770);
  await utimes(dir, 1_500_000_000, 1_500_000_000);
  return dir;
}

describe('placing a staged restore into the volume', () => {
  it('moves the snapshot\'s volume to the volume root with its modes and times, merging what is there', async () => {
    await mkdir(path.join(volume, 'merged'));
    await writeFile(path.join(volume, 'merged', 'old'), 'kept');
    await writeFile(path.join(volume, 'top.txt'), 'overwritten');
    const staging = await makeStagingDir(volume, 'r-1');
    await stageSnapshot(staging);
    await moveIntoVolume(await stagedVolumeDir(staging, [OLD_PATH], SNAPSHOT), volume);
    await removeStagingDir(staging);

    expect((await readdir(volume)).sort()).toEqual(['.arca', 'link', 'merged', 'sub', 'top.txt']);
    expect(await readFile(path.join(volume, 'top.txt'), 'utf8')).toBe('top');
    expect(await readFile(path.join(volume, 'sub', 'deeper', 'file'), 'utf8')).toBe('deep');
    expect((await readdir(path.join(volume, 'merged'))).sort()).toEqual(['new', 'old']);
    expect(await readlink(path.join(volume, 'link'))).toBe('/etc/passwd');
    const merged = await lstat(path.join(volume, 'merged'));
    expect([merged.mode & 0o7777, merged.mtimeMs]).toEqual([0o750, 1_600_000_000_000]);
    const top = await lstat(volume);
    expect([top.mode & 0o7777, top.mtimeMs]).toEqual([0o770, 1_500_000_000_000]);
    // The snapshot's own .arca is left out: only the (now empty) marker directory of this volume.
    expect(await readdir(path.join(volume, '.arca'))).toEqual([]);
  });

  it('never writes through a symlink that sits in the volume where the snapshot has a directory', async () => {
    await symlink(outside, path.join(volume, 'sub'));
    await symlink(outside, path.join(volume, 'merged'));
    const staging = await makeStagingDir(volume, 'r-1');
    await stageSnapshot(staging);
    await moveIntoVolume(await stagedVolumeDir(staging, [OLD_PATH], SNAPSHOT), volume);
    expect(await readdir(outside)).toEqual([]);
    expect((await lstat(path.join(volume, 'sub'))).isDirectory()).toBe(true);
    expect(await readdir(path.join(volume, 'merged'))).toEqual(['new']);
  });

  it('refuses snapshot paths that are not one plain absolute path, or that restored nothing', async () => {
    const staging = await makeStagingDir(volume, 'r-1');
    await stageSnapshot(staging);
    const refused = async (paths: string[], words: string): Promise<void> => {
      const err: unknown = await stagedVolumeDir(staging, paths, SNAPSHOT).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(VolumeJobError);
      expect((err as Error).message).toContain(words);
    };
    await refused([], '0 paths');
    await refused([OLD_PATH, '/other'], '2 paths');
    await refused(['/host_pods/../../../outside'], 'not a plain absolute path');
    await refused(['relative/path'], 'not a plain absolute path');
    await refused(['/host_pods/old-uid/volumes/kubernetes.io~empty-dir/other'], 'restored no directory');
  });

  it('refuses a staged path that is a symlink', async () => {
    const staging = await makeStagingDir(volume, 'r-1');
    await mkdir(path.join(staging, 'host_pods'), { recursive: true });
    await symlink(outside, path.join(staging, 'host_pods', 'x'));
    await expect(stagedVolumeDir(staging, ['/host_pods/x'], SNAPSHOT)).rejects.toThrow(/restored no directory/);
  });
});
