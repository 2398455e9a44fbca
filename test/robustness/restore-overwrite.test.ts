import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArca, summaryOf, tempDir, type RunResult } from '../support/cli.ts';
import { cliEnv } from './helpers.ts';

/** What a restore into a target that already holds data does with it: --overwrite and --delete. */
describe('restore into a non-empty target', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  let runs = 0;
  const env = (): Record<string, string> => cliEnv(path.join(base, 'cache'));

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-overwrite-'));
    repo = path.join(base, 'repo');
    src = path.join(base, 'src');
    await fsp.mkdir(path.join(src, 'd'), { recursive: true });
    await fsp.writeFile(path.join(src, 'a.txt'), 'snapshot a\n');
    await fsp.writeFile(path.join(src, 'same.txt'), 'same in both\n');
    await fsp.writeFile(path.join(src, 'f'), 'snapshot f\n');
    await fsp.writeFile(path.join(src, 'd', 'x.txt'), 'snapshot x\n');
    expect((await runArca(['init', '--repo', repo], { env: env() })).code).toBe(0);
    expect((await runArca(['backup', '--repo', repo, src], { env: env() })).code).toBe(0);
  });
  afterAll(async () => cleanup());

  /** A target restored once, then changed: a.txt edited, an extra file, `f` now a directory holding a file. */
  async function changedTarget(): Promise<{ target: string; at: (...p: string[]) => string }> {
    const target = path.join(base, `target${++runs}`);
    expect((await runArca(['restore', 'latest', '--repo', repo, '--target', target], { env: env() })).code).toBe(0);
    const at = (...p: string[]): string => path.join(target, src, ...p);
    await fsp.writeFile(at('a.txt'), 'edited in the target\n');
    await fsp.writeFile(at('extra.txt'), 'not in the snapshot\n');
    await fsp.rm(at('f'));
    await fsp.mkdir(at('f'));
    await fsp.writeFile(at('f', 'precious.txt'), 'precious\n');
    return { target, at };
  }

  const restore = (target: string, ...options: string[]): Promise<RunResult> =>
    runArca(['restore', 'latest', '--repo', repo, '--target', target, '--json', ...options], { env: env() });

  it('by default rewrites changed files, keeps unchanged ones, and refuses to replace a directory by a file, saying which option does', async () => {
    const { target, at } = await changedTarget();
    const r = await restore(target);
    expect(r.code).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/f is a directory in the target where the snapshot has a file; it was left alone \(restore with --delete to replace it\)/);
    expect(await fsp.readFile(at('f', 'precious.txt'), 'utf8')).toBe('precious\n');
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('snapshot a\n');
    expect(await fsp.readFile(at('extra.txt'), 'utf8')).toBe('not in the snapshot\n');
    expect(summaryOf(r.stdout)).toMatchObject({ files_unchanged: 2, entries_deleted: 0 });
  });

  it('--overwrite never leaves existing files as they are; always rewrites them', async () => {
    const { target, at } = await changedTarget();
    const never = await restore(target, '--overwrite', 'never');
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('edited in the target\n');
    expect(summaryOf(never.stdout)).toMatchObject({ entries_left_alone: 3 });
    const always = await restore(target, '--overwrite', 'always');
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('snapshot a\n');
    expect(summaryOf(always.stdout)).toMatchObject({ files_unchanged: 0, entries_left_alone: 0 });
  });

  it('--overwrite if-newer replaces a file only when the snapshot\'s is newer', async () => {
    const { target, at } = await changedTarget();
    const future = new Date(Date.now() + 3600_000);
    await fsp.utimes(at('a.txt'), future, future);
    await restore(target, '--overwrite', 'if-newer');
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('edited in the target\n');
    const past = new Date(0);
    await fsp.utimes(at('a.txt'), past, past);
    await restore(target, '--overwrite', 'if-newer');
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('snapshot a\n');
  });

  it('--delete replaces the directory by the file and removes what the snapshot does not have', async () => {
    const { target, at } = await changedTarget();
    const r = await restore(target, '--delete');
    expect(r.code, r.stderr).toBe(0);
    expect(await fsp.readFile(at('f'), 'utf8')).toBe('snapshot f\n');
    await expect(fsp.lstat(at('extra.txt'))).rejects.toThrow(/ENOENT/);
    expect(await fsp.readFile(at('a.txt'), 'utf8')).toBe('snapshot a\n');
    expect(summaryOf(r.stdout)).toMatchObject({ entries_deleted: 1, errors: 0 });
  });

  it('refuses to replace a file by a directory without --delete, and nothing below it is tried', async () => {
    const target = path.join(base, `target${++runs}`);
    expect((await restore(target)).code).toBe(0);
    const at = (...p: string[]): string => path.join(target, src, ...p);
    await fsp.rm(at('d'), { recursive: true });
    await fsp.writeFile(at('d'), 'a file where a directory was\n');
    const r = await restore(target);
    expect(r.code).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toEqual([expect.stringMatching(/d is a file in the target where the snapshot has a directory; .*--delete/)]);
    expect(await fsp.readFile(at('d'), 'utf8')).toBe('a file where a directory was\n');
    expect((await restore(target, '--delete')).code).toBe(0);
    expect(await fsp.readFile(at('d', 'x.txt'), 'utf8')).toBe('snapshot x\n');
  });

  it('refuses an unknown --overwrite value and --delete with --include, in one sentence', async () => {
    const target = path.join(base, `target${++runs}`);
    const bad = await restore(target, '--overwrite', 'sometimes');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--overwrite must be one of always, if-changed, if-newer, never/);
    const mixed = await restore(target, '--delete', '--include', '/x');
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/--delete .* cannot be combined with --include or --exclude/);
  });
});
