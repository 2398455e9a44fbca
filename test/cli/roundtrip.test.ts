import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';

describe('arca init / backup / restore', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(async () => cleanup());

  it('restores what it backed up, and a second backup reads nothing new', async () => {
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'a.txt'), 'hello\n');
    await writeFile(path.join(src, 'sub', 'b.bin'), Buffer.alloc(3 << 20, 7));
    await arcaOk(['init', '--repo', repo]);
    const first = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout);
    expect(first).toMatchObject({ message_type: 'summary', files_new: 2, files_unmodified: 0 });
    const second = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout);
    expect(second).toMatchObject({ files_new: 0, files_changed: 0, files_unmodified: 2, data_blobs: 0 });
    const target = path.join(dir, 'target');
    await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify']);
    const restored = path.join(target, src);
    expect(await readFile(path.join(restored, 'a.txt'), 'utf8')).toBe('hello\n');
    expect((await readFile(path.join(restored, 'sub', 'b.bin'))).equals(Buffer.alloc(3 << 20, 7))).toBe(true);
  });

  it('exits 10 when there is no repository and 12 on a wrong password', async () => {
    const repo = path.join(dir, 'repo');
    const missing = await runArca(['snapshots', '--repo', repo]);
    expect(missing.code).toBe(10);
    expect(missing.stderr).toMatch(/no Arca repository/);
    await arcaOk(['init', '--repo', repo]);
    const wrong = await runArca(['snapshots', '--repo', repo], { env: { ARCA_PASSWORD: 'not-it' } });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/password/);
  });
});
