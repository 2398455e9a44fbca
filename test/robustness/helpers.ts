import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository, type InitOptions } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';

/**
 * Extra environment for CLI runs. Node's on-disk compile cache cuts the start-up of each `arca`
 * process (type stripping and compiling every module) to a fraction, which matters for tests that
 * run the CLI hundreds of times. XDG_CACHE_HOME gives the runs their own Arca cache: copies of
 * one repository share its ID, so with a shared cache a damaged copy could be read from entries
 * that an intact one left there (and the tests would fill the user's ~/.cache).
 */
export function cliEnv(cacheHome: string): Record<string, string> {
  return { NODE_COMPILE_CACHE: path.join(os.tmpdir(), 'arca-test-node-compile-cache'), XDG_CACHE_HOME: cacheHome };
}

/** The password `testEnv` gives every CLI run. */
export const PASSWORD = 'test-password';

/**
 * Creates a repository through the API (the CLI has no --pack-size), with the same fast KDF the
 * CLI runs use.
 */
export async function initRepo(dir: string, options: InitOptions = {}): Promise<Repository> {
  return Repository.init(new LocalStorage(dir), Buffer.from(PASSWORD), options, { fixedN: 1024 });
}

export async function openRepo(dir: string): Promise<Repository> {
  return Repository.open(new LocalStorage(dir), Buffer.from(PASSWORD));
}

/** Writes `size` random bytes to `file`, creating its directory. */
export async function writeRandomFile(file: string, size: number): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const handle = await fsp.open(file, 'w');
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(16 << 20, size - done);
      await handle.write(randomBytes(n));
      done += n;
    }
  } finally {
    await handle.close();
  }
}

/** Relative paths of every regular file under `root`, sorted; directories and links are walked with lstat. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), childRel);
      else out.push(childRel);
    }
  }
  await walk(root, '');
  return out.sort();
}

/**
 * Differences between the files under `expected` and under `actual` (names and bytes); empty when
 * `actual` holds exactly the same regular files with the same content.
 */
export async function treeDifferences(expected: string, actual: string): Promise<string[]> {
  const want = await listFiles(expected);
  let got: string[];
  try {
    got = await listFiles(actual);
  } catch (err) {
    return [`cannot read ${actual}: ${err instanceof Error ? err.message : String(err)}`];
  }
  const problems: string[] = [];
  if (want.join('\n') !== got.join('\n')) problems.push(`file lists differ: expected [${want.join(', ')}], got [${got.join(', ')}]`);
  for (const rel of want) {
    if (!got.includes(rel)) continue;
    const a = await fsp.lstat(path.join(expected, rel));
    const b = await fsp.lstat(path.join(actual, rel));
    if (a.isFile() !== b.isFile()) {
      problems.push(`${rel}: type differs`);
      continue;
    }
    if (!a.isFile()) continue;
    const [x, y] = await Promise.all([fsp.readFile(path.join(expected, rel)), fsp.readFile(path.join(actual, rel))]);
    if (!x.equals(y)) problems.push(`${rel}: content differs (${x.length} bytes expected, ${y.length} restored)`);
  }
  return problems;
}

/** Every object file in a local repository, as storage names ("config", "data/ab/<id>", ...). */
export async function listObjectNames(repoDir: string): Promise<string[]> {
  return listFiles(repoDir);
}

/** Fails with the offending lines unless stderr is a short, clean error report: no stack trace, every line prefixed. */
export function stderrProblems(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  const problems: string[] = [];
  if (lines.length === 0) problems.push('stderr is empty');
  for (const line of lines) {
    if (!/^(arca|error): /.test(line)) problems.push(`unexpected stderr line: ${line}`);
    if (/unexpected error|^\s+at /.test(line)) problems.push(`stack trace or unexpected error: ${line}`);
  }
  return problems;
}

/**
 * Everything under `root` as "path type detail" lines (lstat, never following links): file content
 * and symlink targets included, so any write, creation or deletion under `root` shows up.
 */
export async function fingerprint(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const childRel = `${rel}/${name}`;
      const st = await fsp.lstat(full);
      if (st.isDirectory()) {
        out.push(`${childRel} dir ${(st.mode & 0o7777).toString(8)}`);
        await walk(full, childRel);
      } else if (st.isSymbolicLink()) {
        out.push(`${childRel} symlink ${await fsp.readlink(full)}`);
      } else if (st.isFile()) {
        out.push(`${childRel} file ${(st.mode & 0o7777).toString(8)} ${(await fsp.readFile(full)).toString('base64')}`);
      } else {
        out.push(`${childRel} other`);
      }
    }
  }
  await walk(root, '');
  return out;
}
