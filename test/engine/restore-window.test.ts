import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume, initRepository, openRepository, type RepositoryOptions } from '../../engine/index.ts';
import { WorkerPool, workerSetupFor } from '../../engine/pool/worker-pool.ts';
import { Restorer, type RestoreOptions } from '../../engine/restore/restorer.ts';
import { tempDir } from '../support/cli.ts';
import { pseudoRandom, SMALL_REPO } from '../storage-wrappers/helpers.ts';

/**
 * The restore streams its plan through windows of a few entries: a snapshot of thousands of
 * files comes back exact, while the restore never held more planned entries than its window
 * and queue allow (issue 20).
 */
describe('a restore planned in small windows', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  let options: RepositoryOptions;
  let source: string;
  const FILES = 3000;

  beforeAll(async () => {
    temp = await tempDir('arca-restore-window-');
    options = { url: path.join(temp.dir, 'repo'), password: 'pw' };
    await initRepository({ ...options, config: SMALL_REPO, kdf: { fixedN: 1024 } });
    source = path.join(temp.dir, 'src');
    // Directories of every depth from 1 to 6 and fan-outs from 1 to 40, small files of one
    // blob, files of several blobs, empty files, hard links, symlinks and empty directories.
    for (let i = 0; i < FILES; i++) {
      const parts = [`a${i % 7}`, `b${i % 40}`, `c${i % 3}`, `d${i % 11}`, `e${i % 2}`].slice(0, i % 6);
      const dir = path.join(source, ...parts);
      await fsp.mkdir(dir, { recursive: true });
      const size = i % 500 === 0 ? 300_000 + i : i % 97 === 0 ? 0 : 50 + (i % 900);
      await fsp.writeFile(path.join(dir, `f${i}`), pseudoRandom(`f:${i}`, size), { mode: i % 5 === 0 ? 0o600 : 0o644 });
      if (i % 250 === 0) await fsp.link(path.join(dir, `f${i}`), path.join(dir, `link${i}`));
      if (i % 300 === 0) await fsp.symlink(`f${i}`, path.join(dir, `sym${i}`));
      if (i % 400 === 0) await fsp.mkdir(path.join(dir, `empty${i}`));
    }
    // Directory times last: creating entries above changed them.
    for (const entry of await fsp.readdir(source, { recursive: true, withFileTypes: true })) {
      if (entry.isDirectory()) await fsp.utimes(path.join(entry.parentPath, entry.name), 1_000_000 + entry.name.length, 1_500_000_000 + entry.name.length);
    }
    const outcome = await backupVolume(await openRepository(options), source, { workers: 1 });
    expect(outcome.status).toBe('completed');
  });
  afterAll(async () => { await temp.cleanup(); });

  async function restore(target: string, restoreOptions: Omit<RestoreOptions, 'target'>): Promise<{ restorer: Restorer; restored: string }> {
    const repo = await openRepository(options);
    await repo.loadIndex();
    const [stored] = await repo.listSnapshots();
    if (!stored) throw new Error('no snapshot');
    const pool = new WorkerPool(workerSetupFor(repo.keys, repo.config), 2);
    const restorer = new Restorer(repo, pool);
    try {
      await restorer.run(stored.snapshot, { target, ...restoreOptions });
    } finally {
      await pool.close();
      await repo.close();
    }
    // The snapshot holds the source below its absolute path, or as its root.
    const below = path.join(target, source);
    return { restorer, restored: existsSync(below) ? below : target };
  }

  /** Every entry under `root`: type, mode, size, content digest, link target, mtime of directories and files, inode groups of hard links. */
  async function describeTree(root: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const inodes = new Map<number, string>();
    for (const entry of await fsp.readdir(root, { recursive: true, withFileTypes: true })) {
      const full = path.join(entry.parentPath, entry.name);
      const rel = path.relative(root, full);
      const st = await fsp.lstat(full);
      let what = `${st.mode.toString(8)} ${Math.floor(st.mtimeMs)}`;
      if (entry.isFile()) {
        const first = inodes.get(st.ino) ?? rel;
        inodes.set(st.ino, first);
        what += ` ${st.size} ${createHash('sha256').update(await fsp.readFile(full)).digest('hex')} inode-of:${first}`;
      } else if (entry.isSymbolicLink()) what = `-> ${await fsp.readlink(full)}`;
      out[rel] = what;
    }
    return out;
  }

  it(`restores ${FILES} files exactly through windows of 64 entries, holding at most three windows planned`, async () => {
    const target = path.join(temp.dir, 'target-small');
    const { restorer, restored } = await restore(target, { planWindow: 64, windowsQueued: 1 });
    expect(restorer.summary.errors).toBe(0);
    expect(restorer.summary.files_restored).toBe(FILES + Math.ceil(FILES / 250));
    expect(await describeTree(restored)).toEqual(await describeTree(source));
    // One window being built, one queued, one being restored.
    expect(restorer.peakEntriesHeld).toBeLessThanOrEqual(3 * 64);
    expect(restorer.peakEntriesHeld).toBeGreaterThan(0);
  });

  it('with --include, restores the chosen paths and the directories leading to them, in windows of 16', async () => {
    const target = path.join(temp.dir, 'target-include');
    const { restorer, restored } = await restore(target, { planWindow: 16, windowsQueued: 1, includes: ['**/a3/b10/c1', 'f2999'] });
    expect(restorer.summary.errors).toBe(0);
    expect(restorer.peakEntriesHeld).toBeLessThanOrEqual(3 * 16);
    const all = await describeTree(source);
    const got = await describeTree(restored);
    const chosen = Object.keys(all).filter((rel) => rel.startsWith('a3/b10/c1/') || rel === 'a3/b10/c1' || path.basename(rel) === 'f2999');
    expect(chosen.length).toBeGreaterThanOrEqual(10);
    for (const rel of chosen) expect(got[rel], rel).toBe(all[rel]);
    expect(Object.keys(got).filter((rel) => !chosen.some((c) => c === rel || c.startsWith(`${rel}/`)))).toEqual([]);
  });

  it('with --delete into a filled target, ends with exactly the snapshot, in windows of 32', async () => {
    const target = path.join(temp.dir, 'target-delete');
    await restore(target, {});
    const { restored: first } = await restore(target, {});
    await fsp.writeFile(path.join(first, 'a1', 'b1', 'extra'), 'not in the snapshot');
    await fsp.mkdir(path.join(first, 'a2', 'b2', 'c2', 'extra-dir', 'deeper'), { recursive: true });
    await fsp.writeFile(path.join(first, 'f0'), 'changed');
    const { restorer, restored } = await restore(target, { planWindow: 32, windowsQueued: 1, delete: true });
    expect(restorer.summary.errors).toBe(0);
    expect(restorer.summary.entries_deleted).toBe(2);
    expect(await describeTree(restored)).toEqual(await describeTree(source));
  });
});
