import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, CLI, runArca, startArca, summaryOf, tempDir, testEnv, type RunResult } from '../support/cli.ts';

/** What a new user tripped over (issue 19), each on one repository of two snapshots. */

/** Every file below `root` with its size and modification time: what "writes nothing" compares. */
async function fileStates(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    const st = await fsp.stat(full);
    out.push(`${path.relative(root, full)} ${st.size} ${st.mtimeMs}`);
  }
  return out.sort();
}

/** One line on stderr, "arca: " and a sentence, no stack trace. */
function expectOneSentence(result: RunResult, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(1);
  expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).toMatch(/^arca: \S/);
  expect(result.stderr).not.toMatch(/unexpected error|\n\s+at /);
  expect(result.stderr).toMatch(pattern);
}

/** Every key of every object in `value`, recursively. */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysOf);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [k, ...keysOf(v)]);
}

describe('what a new user trips over', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  let first: string;
  let second: string;
  const arca = async (...args: string[]): Promise<string> => (await arcaOk([...args, '--repo', repo])).stdout;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('arca-new-user-'));
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    // Enough entries that a listing overflows a pipe's buffer (64 KiB).
    for (let i = 0; i < 1500; i++) {
      await fsp.mkdir(path.join(src, 'logs', `d${i % 30}`), { recursive: true });
      await fsp.writeFile(path.join(src, 'logs', `d${i % 30}`, `a-rather-long-file-name-to-fill-the-pipe-${i}.log`), `line ${i}\n`);
    }
    await fsp.mkdir(path.join(src, 'db'));
    await fsp.writeFile(path.join(src, 'db', 'data'), 'rows\n');
    await arca('init');
    first = String(summaryOf(await arca('backup', src, '--json', '--tag', 'one')).snapshot_id);
    for (let i = 0; i < 800; i++) await fsp.writeFile(path.join(src, 'logs', `d${i % 30}`, `changed-${i}.log`), `changed ${i}\n`);
    second = String(summaryOf(await arca('backup', src, '--json')).snapshot_id);
  });
  afterAll(async () => cleanup());

  it('repair index --dry-run writes nothing and says it is a dry run', async () => {
    expect((await fsp.readdir(path.join(repo, 'index'))).length).toBeGreaterThan(1);
    const before = await fileStates(repo);
    const text = await arca('repair', 'index', '--dry-run');
    expect(text).toMatch(/^dry run, nothing was written: read \d+ pack headers; would index \d+ blobs in 1 index files, replacing [2-9]/);
    const json = JSON.parse(await arca('repair', 'index', '--dry-run', '--json')) as Record<string, unknown>;
    expect(json).toMatchObject({ dry_run: true, index_files_written: 1 });
    expect(await fileStates(repo)).toEqual(before);
  });

  it('refuses an empty password file as it refuses an empty ARCA_PASSWORD', async () => {
    const empty = path.join(dir, 'empty-password');
    for (const content of ['', '\n', '\nsecond line\n']) {
      await fsp.writeFile(empty, content);
      const other = path.join(dir, 'never-created');
      const result = await runArca(['init', '--repo', other, '--password-file', empty], { env: { ARCA_PASSWORD: undefined } });
      expectOneSentence(result, /password file .* is empty/);
      await expect(fsp.access(other)).rejects.toThrow();
    }
    const fromEnv = await runArca(['snapshots', '--repo', repo], { env: { ARCA_PASSWORD: '' } });
    expectOneSentence(fromEnv, /No password given/);
  });

  it('stops quietly when the reader of its output goes away (arca ls | head -1)', async () => {
    const indexName = (await fsp.readdir(path.join(repo, 'index')))[0] ?? '';
    for (const args of [['ls', 'latest'], ['ls', 'latest', '--json'], ['diff', first, second, '--json'], ['cat', 'index', indexName]]) {
      const child = startArca([...args, '--repo', repo]);
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      // Read the first chunk, then close the pipe, as head does.
      await new Promise<void>((resolve) => child.stdout?.once('data', () => { child.stdout?.destroy(); resolve(); }));
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => { resolve(c); }));
      expect(stderr, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(141);
    }
  });

  it('says what is wrong in one sentence, never with a stack trace', async () => {
    const tree = (JSON.parse(await arca('cat', 'snapshot', second)) as { tree: string }).tree;
    expectOneSentence(await runArca(['cat', 'tree', tree.slice(0, 8), '--repo', repo]), /full 64-digit hex tree ID/);
    expectOneSentence(await runArca(['snapshots', '--repo', 'file://relative/repo']), /not a file URL of an absolute path/);
    const aFile = path.join(dir, 'a-file');
    await fsp.writeFile(aFile, 'not a directory\n');
    expectOneSentence(await runArca(['restore', 'latest', '--repo', repo, '--target', aFile]), /is not a directory/);
    expect(await fsp.readFile(aFile, 'utf8')).toBe('not a directory\n');
    expectOneSentence(await runArca(['restore', 'latest', '--repo', repo, '--target', path.join(aFile, 'below')]), /is not a directory/);
  });

  // /proc/nope and /proc/1/nope: their parents exist, yet mkdir says ENOENT (Node's recursive mkdir loops on that).
  it('refuses a repository where /proc allows no new directory, instead of retrying forever', async () => {
    expectOneSentence(await runArca(['init', '--repo', '/proc/nope/repo']), /ENOENT: no such file or directory, mkdir '\/proc\/nope'/);
  });

  it('refuses a restore target where /proc allows no new directory, instead of retrying forever', async () => {
    expectOneSentence(await runArca(['restore', 'latest', '--repo', repo, '--target', '/proc/1/nope']), /ENOENT: no such file or directory, mkdir '\/proc\/1\/nope'/);
  });

  it('refuses relative paths inside a snapshot with the absolute ones to write, and reads --path as backup does', async () => {
    const ls = await runArca(['ls', 'latest', 'logs/d1', '--repo', repo], { cwd: dir });
    expectOneSentence(ls, new RegExp(`did you mean ${dir}/logs/d1 or ${src}/logs/d1\\?`));
    const listed = (await arca('ls', 'latest', `${src}/logs/d1`)).trim().split('\n');
    expect(listed[0]).toBe(`${src}/logs/d1`);
    expect(listed.length).toBeGreaterThan(50);
    for (const option of ['--include', '--exclude']) {
      const restore = await runArca(['restore', 'latest', '--repo', repo, '--target', path.join(dir, 'never'), option, 'src/db']);
      expectOneSentence(restore, new RegExp(`${option} "src/db" is a relative path`));
    }
    expectOneSentence(await runArca(['backup', src, '--repo', repo, '--exclude', 'logs/d1']), /--exclude "logs\/d1" is a relative path/);
    // A name without "/" matches at any depth, and an absolute pattern the path itself.
    const target = path.join(dir, 'restored-db');
    await arca('restore', 'latest', '--target', target, '--include', `${src}/db`);
    expect(await fsp.readdir(path.join(target, src))).toEqual(['db']);
    // --path is resolved against the current directory, as backup resolved its PATH.
    const byPath = async (cwd: string, p: string): Promise<string[]> =>
      (JSON.parse((await arcaOk(['snapshots', '--path', p, '--json', '--repo', repo], { cwd })).stdout) as Array<{ id: string }>).map((s) => s.id);
    expect(await byPath(dir, 'src')).toEqual([first, second]);
    expect(await byPath(src, '.')).toEqual([first, second]);
    expect(await byPath(src, 'src')).toEqual([]);
  });

  it('prints JSON one way: snake_case keys, one document or JSON lines with message_type', async () => {
    const document = async (...args: string[]): Promise<unknown> => {
      const out = await arca(...args, '--json');
      expect(out.trim().split('\n'), args.join(' ')).toHaveLength(1);
      return JSON.parse(out) as unknown;
    };
    const lines = async (...args: string[]): Promise<Array<Record<string, unknown>>> => {
      const out = (await arca(...args, '--json')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const line of out) expect(typeof line.message_type, `${args.join(' ')}: ${JSON.stringify(line)}`).toBe('string');
      return out;
    };
    const outputs: unknown[] = [
      await document('snapshots'), await document('stats'), await document('stats', '--mode', 'raw-data'), await document('check'),
      await document('key', 'list'), await document('repair', 'index', '--dry-run'), await document('prune', '--dry-run'),
      await document('forget', '--keep-last', '5', '--dry-run'),
      await lines('ls', 'latest'), await lines('diff', first, second), await lines('restore', 'latest', '--target', path.join(dir, 'json-restore')),
    ];
    // forget --prune: one document holding both reports.
    const forgetPrune = await document('forget', '--keep-last', '1', '--prune', '--dry-run');
    expect(forgetPrune).toMatchObject({ groups: [{ keep: [{ id: second }], remove: [{ id: first }] }], prune: { dry_run: true } });
    // repair snapshots: JSON lines that end with a summary, also when nothing needed repair.
    expect((await lines('repair', 'snapshots', '--dry-run')).at(-1)).toEqual({ message_type: 'summary', snapshots_repaired: 0, dry_run: true });
    // key add prints JSON too.
    const added = await arcaOk(['key', 'add', '--json', '--repo', repo], { env: { ARCA_NEW_PASSWORD: 'another' } });
    expect(JSON.parse(added.stdout)).toEqual({ added: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown });
    const keys = new Set([...outputs, forgetPrune].flatMap(keysOf));
    expect([...keys].filter((key) => !/^[a-z][a-z0-9_]*$/.test(key))).toEqual([]);
    expect(keys).toContain('snapshots_checked');
  });

  it('asks for the password on a terminal, without echoing it', async () => {
    // script(1) gives arca a pseudo-terminal; the password is typed once the prompt shows.
    const command = [process.execPath, '--no-warnings', CLI, 'snapshots', '--repo', repo].map((w) => `'${w}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: testEnv({ ARCA_PASSWORD: undefined }), stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let typed = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      if (!typed && output.includes('Repository password: ')) {
        typed = true;
        child.stdin.write('test-password\r');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => { resolve(c); }));
    expect(code, output).toBe(0);
    expect(output).toMatch(/2 snapshots/);
    expect(output).not.toContain('test-password');
  });
});
