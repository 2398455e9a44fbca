import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanTotals } from '../../engine/backup/scanner.ts';
import { tempDir } from '../support/cli.ts';

/** The progress pre-scan counts what the backup will read, through handles: never what a symlink leads to. */
describe('scanTotals', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => { temp = await tempDir('arca-scan-totals-'); });
  afterAll(async () => { await temp.cleanup(); });

  it('counts regular files and bytes at every depth, leaves out excluded names, and follows no symlink', async () => {
    const root = path.join(temp.dir, 'vol');
    const outside = path.join(temp.dir, 'other-tenant');
    await fsp.mkdir(outside, { recursive: true });
    for (let i = 0; i < 5; i++) await fsp.writeFile(path.join(outside, `secret${i}`), Buffer.alloc(1000));
    let dir = root;
    let expected = { files: 0, bytes: 0 };
    for (let depth = 0; depth < 10; depth++) {
      await fsp.mkdir(dir, { recursive: true });
      await fsp.writeFile(path.join(dir, `f${depth}`), Buffer.alloc(depth * 10 + 1));
      await fsp.writeFile(path.join(dir, `skip${depth}.tmp`), Buffer.alloc(50));
      await fsp.symlink(outside, path.join(dir, 'link'));
      expected = { files: expected.files + 1, bytes: expected.bytes + depth * 10 + 1 };
      dir = path.join(dir, `d${depth}`);
    }
    // Names of any bytes.
    await fsp.writeFile(Buffer.from(`${root}/\xff\xfe`, 'latin1'), Buffer.alloc(7));
    expected = { files: expected.files + 1, bytes: expected.bytes + 7 };
    const totals = await scanTotals([root], { excludes: ['*.tmp'], oneFileSystem: false, signal: new AbortController().signal });
    expect(totals).toEqual(expected);
  });

  it('returns nothing once cancelled', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(await scanTotals([temp.dir], { excludes: [], oneFileSystem: false, signal: controller.signal })).toBeUndefined();
  });
});
