import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume, initRepository, restoreSnapshot, type Repository } from '../../engine/index.ts';
import { UsageError } from '../../repository/errors.ts';
import { decodeSnapshot, SnapshotFormatError } from '../../repository/snapshot/snapshot.ts';
import { tempDir } from '../support/cli.ts';
import { asObject, scanTree } from '../support/fs-tree.ts';

/** A directory backed up as the snapshot's root (Snapshot.root), next to the restic-like default. */
describe('a directory as the snapshot\'s root', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  let repo: Repository;
  let source: string;

  beforeAll(async () => {
    temp = await tempDir('arca-as-root-');
    repo = await initRepository({ url: path.join(temp.dir, 'repo'), password: 'pw', kdf: { fixedN: 1024 } });
    source = path.join(temp.dir, 'srv', 'data');
    await fsp.mkdir(path.join(source, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(source, 'sub', 'f'), 'content\n');
    await fsp.writeFile(path.join(source, 'top'), 'top\n');
    await fsp.chmod(source, 0o710);
    await fsp.utimes(source, 1_400_000_000.25, 1_400_000_000.25);
  });
  afterAll(async () => {
    await repo.close();
    await temp.cleanup();
  });

  it('restores the contents straight into the target, which takes the directory\'s mode and times', async () => {
    const outcome = await backupVolume(repo, source, { asRoot: true, workers: 1 });
    if (outcome.status !== 'completed') throw new Error('not completed');
    expect(outcome.snapshot).toMatchObject({ paths: [source], root: { mode: 0o710, mtime: '1400000000250000000' } });
    const target = path.join(temp.dir, 'target');
    const restored = await restoreSnapshot(repo, outcome.snapshotId, target, { workers: 1 });
    expect(restored.status).toBe('completed');
    expect(asObject(await scanTree(target))).toEqual(asObject(await scanTree(source)));
  });

  it('by default the tree still mirrors the absolute path, as restic\'s does, and a parent of the other shape is not used', async () => {
    const outcome = await backupVolume(repo, source, { workers: 1, parent: { kind: 'snapshot', ref: 'latest' } });
    if (outcome.status !== 'completed') throw new Error('not completed');
    expect(outcome.snapshot.root).toBeUndefined();
    // The rooted parent's tree is not this backup's: everything is read, nothing is taken from it by mistake.
    expect(outcome.summary).toMatchObject({ files_new: 2, files_unmodified: 0 });
    const target = path.join(temp.dir, 'target-restic');
    expect((await restoreSnapshot(repo, outcome.snapshotId, target, { workers: 1 })).status).toBe('completed');
    expect(await fsp.readFile(path.join(target, source, 'sub', 'f'), 'utf8')).toBe('content\n');
  });

  it('takes only one directory as the root', async () => {
    await expect(backupVolume(repo, [source, temp.dir], { asRoot: true, workers: 1 })).rejects.toThrow(UsageError);
  });

  it('snapshot readers refuse a root without exactly one path or with bad metadata', () => {
    const base = { version: 1, time: new Date().toISOString(), tree: 'ab'.repeat(32), hostname: 'h', username: 'u', tags: [], program_version: 't' };
    const root = { mode: 0o755, uid: 0, gid: 0, mtime: '1', atime: '1' };
    expect(decodeSnapshot(Buffer.from(JSON.stringify({ ...base, paths: ['/a'], root })))).toMatchObject({ root });
    for (const bad of [{ paths: ['/a', '/b'], root }, { paths: ['/a'], root: { ...root, mtime: 'soon' } }, { paths: ['/a'], root: { ...root, uid: -1 } }]) {
      expect(() => decodeSnapshot(Buffer.from(JSON.stringify({ ...base, ...bad })))).toThrow(SnapshotFormatError);
    }
  });
});
