import { promises as fsp } from 'node:fs';
import path from 'node:path';

function codeOf(err: unknown): string | undefined {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}

/**
 * Creates directory `dir` and its missing parents, like `mkdir -p`. Node's own
 * `mkdir({ recursive: true })` never returns where a parent exists yet refuses a new child with
 * ENOENT (/proc, /sys): it creates the parent again and again. Here each missing level is made
 * once, from the top down, and such a refusal is thrown.
 */
export async function makeDirs(dir: string, mode?: number): Promise<void> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let at = target; ; at = path.dirname(at)) {
    try {
      await fsp.stat(at);
      break;
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' || path.dirname(at) === at) throw err;
      missing.push(at);
    }
  }
  for (const at of missing.reverse()) {
    try {
      await fsp.mkdir(at, { mode });
    } catch (err) {
      // Another process made it meanwhile: fine as long as it is a directory.
      if (codeOf(err) !== 'EEXIST' || !(await fsp.stat(at)).isDirectory()) throw err;
    }
  }
}
