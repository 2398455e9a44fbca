import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';

describe('--compression-level', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-compression-')));
  afterEach(async () => cleanup());

  /** 2 MiB of log lines: zstd shrinks them to a small fraction. */
  const logLines = (word: string): Buffer =>
    Buffer.from(Array.from({ length: 40_000 }, (_, i) => `2026-11-22T23:${String(i % 60).padStart(2, '0')} level=info ${word} ${i} served\n`).join(''));
  const text = logLines('request');
  const other = logLines('upload');

  it('is the repository default given to init, and a backup may override it; every way restores exactly', async () => {
    const src = path.join(dir, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'app.log'), text);
    const added = async (repo: string, ...flags: string[]): Promise<number> =>
      summaryOf((await arcaOk(['backup', '--repo', repo, '--json', ...flags, src])).stdout).data_added as number;

    const stored = path.join(dir, 'stored');
    await arcaOk(['init', '--repo', stored, '--compression-level', '0']);
    expect(await added(stored)).toBeGreaterThan(text.length);

    const compressed = path.join(dir, 'compressed');
    await arcaOk(['init', '--repo', compressed]);
    expect(await added(compressed)).toBeLessThan(text.length / 5);

    // New content, backed up uncompressed into the compressing repository.
    await writeFile(path.join(src, 'app.log'), other);
    expect(await added(compressed, '--compression-level', '0')).toBeGreaterThan(other.length);

    const latest = new Map([[stored, text], [compressed, other]]);
    for (const [repo, content] of latest) {
      const target = path.join(dir, `restore-${path.basename(repo)}`);
      await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify']);
      expect((await readFile(path.join(target, src, 'app.log'))).equals(content)).toBe(true);
    }
  });

  it('refuses a level zstd does not have, with one clear line', async () => {
    const repo = path.join(dir, 'repo');
    for (const bad of ['20', '-1', 'fast', '3.5']) {
      const init = await runArca(['init', '--repo', repo, `--compression-level=${bad}`]);
      expect(init.code).toBe(1);
      expect(init.stderr).toMatch(/--compression-level "[^"]+" is not a zstd level from 0 \(no compression\) to 19/);
    }
    await arcaOk(['init', '--repo', repo]);
    const backup = await runArca(['backup', '--repo', repo, '--compression-level', '99', dir]);
    expect(backup.code).toBe(1);
    expect(backup.stderr).toMatch(/--compression-level "99"/);
  });
});
