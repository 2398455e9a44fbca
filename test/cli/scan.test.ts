import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';
import { asObject, scanTree } from '../support/fs-tree.ts';

/**
 * New directories are listed in the workers, small subtrees in one task with their parent
 * (up to 256 entries, see DESCEND_UP_TO in archiver.ts), larger ones a directory per task; the
 * directories of a parent snapshot are listed on the main thread. Each way must give the same
 * snapshot.
 */
describe('directory scans', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-scan-')));
  afterEach(async () => cleanup());

  it('back up a tree wider than one scan task exactly, with every kind of entry at every depth', async () => {
    const src = path.join(dir, 'src');
    // 12 × 12 directories of 3 files each: 600 entries, past the budget of one task; and
    // in each leaf, a small file, a file past the small-file limit, a symlink, a hard link
    // (two names) and an excluded file.
    let files = 0;
    for (let a = 0; a < 12; a++) {
      for (let b = 0; b < 12; b++) {
        const leaf = path.join(src, `a${a}`, `b${b}`);
        await mkdir(leaf, { recursive: true });
        await writeFile(path.join(leaf, 'small.txt'), `${a}/${b}\n`.repeat(a + b + 1));
        await writeFile(path.join(leaf, 'skip.tmp'), 'excluded\n');
        if ((a + b) % 5 === 0) {
          await writeFile(path.join(leaf, 'large.bin'), Buffer.alloc(100 << 10, a * 12 + b));
          await symlink(`../b${(b + 1) % 12}/small.txt`, path.join(leaf, 'link'));
          await link(path.join(leaf, 'small.txt'), path.join(leaf, 'small-again.txt'));
          files += 2;
        }
        files++;
      }
    }
    const repo = path.join(dir, 'repo');
    await arcaOk(['init', '--repo', repo]);
    const first = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', '--exclude', '*.tmp', src])).stdout);
    expect(first).toMatchObject({ files_new: files, files_unreadable: 0, dirs_new: 1 + 12 + 144 });

    // A second backup lists on the main thread; one new subtree goes to the workers again.
    await mkdir(path.join(src, 'a0', 'new', 'deeper'), { recursive: true });
    await writeFile(path.join(src, 'a0', 'new', 'deeper', 'fresh.txt'), 'fresh\n');
    const second = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', '--exclude', '*.tmp', src])).stdout);
    expect(second).toMatchObject({ files_new: 1, files_changed: 0, files_unmodified: files, dirs_new: 2 });

    const target = path.join(dir, 'target');
    await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify']);
    const expected = new Map([...(await scanTree(src))].filter(([rel]) => !rel.endsWith('.tmp')));
    expect(asObject(await scanTree(path.join(target, src)))).toEqual(asObject(expected));
  });
});
