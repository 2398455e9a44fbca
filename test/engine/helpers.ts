import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { Checker } from '../../repository/check/checker.ts';
import { LEASES_PREFIX } from '../../repository/object-names.ts';
import { openRepository, type RepositoryOptions } from '../../repository/open-repository.ts';

/** Runs `check --read-data` on a fresh handle of the repository and expects no problem. */
export async function expectCheckClean(options: RepositoryOptions): Promise<void> {
  const repo = await openRepository(options);
  try {
    const report = await new Checker(repo).run({ readData: { kind: 'all' } });
    expect(report.problems).toEqual([]);
  } finally {
    await repo.close();
  }
}

/** The names under leases/: none once every writer has released its lease. */
export async function leaseNames(options: RepositoryOptions): Promise<string[]> {
  const repo = await openRepository(options);
  const names: string[] = [];
  for await (const obj of repo.storage.list(LEASES_PREFIX)) names.push(obj.name);
  await repo.close();
  return names;
}

/** Regular files under `dir` whose names match `pattern`, recursively (0 if it does not exist). */
export async function countFiles(dir: string, pattern: RegExp): Promise<number> {
  const entries = await fsp.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && pattern.test(e.name) && !e.name.endsWith('.arca-tmp')).length;
}

/** Resolves once `condition` holds, checked every few milliseconds. */
export async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** `count` files of `size` pseudo-random bytes each, spread over `dirs` directories under `root`. */
export async function writeFiles(root: string, dirs: number, count: number, size: number, seed: string, random: (seed: string, size: number) => Buffer): Promise<number> {
  for (let i = 0; i < count; i++) {
    const dir = path.join(root, `d${i % dirs}`);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, `f${i}`), random(`${seed}:${i}`, size));
  }
  return count * size;
}
