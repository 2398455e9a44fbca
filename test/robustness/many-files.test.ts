import { execFile } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, summaryOf, tempDir, testEnv } from '../support/cli.ts';
import { cliEnv } from './helpers.ts';

/** 100,000 small files restored by a process allowed exactly 1,024 open files (issue 20). */

const run = promisify(execFile);
const FILES = 100_000;
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GEN = [path.join(REPO_ROOT, '..', 'shared', 'bench', 'gen-many-files'), '/work/shared/bench/gen-many-files'].find((p) => existsSync(p));

/** Runs the CLI under `ulimit -n 1024` (soft and hard, so Node cannot raise it). */
async function arcaLimited(args: readonly string[], cacheHome: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const quoted = [process.execPath, '--no-warnings', CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  try {
    const { stdout, stderr } = await run('bash', ['-c', `ulimit -n 1024 && exec ${quoted}`], { env: testEnv(cliEnv(cacheHome)), maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.runIf(GEN !== undefined)('many files under a low open-file limit', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir: base, cleanup } = await tempDir('arca-many-files-')));
  afterAll(async () => cleanup());

  it(`backs up and restores ${FILES} files with ulimit -n 1024, every file byte for byte`, async () => {
    const src = path.join(base, 'src');
    const repo = path.join(base, 'repo');
    const target = path.join(base, 'target');
    const cache = path.join(base, 'cache');
    await run('python3', [GEN ?? '', '--root', src, '--files', String(FILES)]);
    expect((await arcaLimited(['init', '--repo', repo], cache)).code).toBe(0);
    const backup = await arcaLimited(['backup', '--repo', repo, '--json', src], cache);
    expect(backup.code, backup.stderr).toBe(0);
    expect(summaryOf(backup.stdout)).toMatchObject({ total_files_processed: FILES, files_unreadable: 0 });
    const restore = await arcaLimited(['restore', 'latest', '--repo', repo, '--target', target, '--json'], cache);
    expect(restore.code, restore.stderr.slice(0, 2000)).toBe(0);
    expect(summaryOf(restore.stdout)).toMatchObject({ files_restored: FILES, errors: 0 });
    // diff exits 0 only when both trees hold the same names and bytes.
    const diff = await run('diff', ['-r', '--no-dereference', src, path.join(target, src)], { maxBuffer: 64 << 20 }).then(() => '', (err: unknown) => String((err as { stdout?: string }).stdout ?? err).slice(0, 2000));
    expect(diff).toBe('');
    await fsp.rm(target, { recursive: true });
  });
});
