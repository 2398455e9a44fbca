import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReference, withReference } from '../../cli/reference.ts';
import { CLI, tempDir, testEnv } from '../support/cli.ts';

/**
 * The documentation cannot go stale: the README's and docs/cli.md's runnable examples run
 * against a fresh local repository, docs/cli.md's reference is what the parser prints, and the
 * README's folder table is the repository's tree.
 */

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url);
const read = (name: string): Promise<string> => fsp.readFile(new URL(name, ROOT), 'utf8');

/** The fenced blocks marked "```sh runnable", in order. */
function runnableBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh runnable\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
}

describe('the documentation', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir, cleanup } = await tempDir('arca-doc-examples-')));
  afterAll(async () => cleanup());

  /** Runs a document's runnable blocks as one script, in a home with ~/data and `arca` on PATH. */
  async function runExamples(name: string): Promise<void> {
    const blocks = runnableBlocks(await read(name));
    expect(blocks.length, name).toBeGreaterThan(0);
    const home = path.join(dir, path.basename(name, '.md'));
    const bin = path.join(home, 'bin');
    await fsp.mkdir(bin, { recursive: true });
    await fsp.writeFile(path.join(bin, 'arca'), `#!/bin/sh\nexec '${process.execPath}' --no-warnings '${CLI}' "$@"\n`, { mode: 0o755 });
    const files = { 'data/a.txt': 'alpha\n', 'data/scratch.tmp': 'scratch\n', 'data/docs/guide.md': '# guide\n', 'data/docs/notes.tmp': 'notes\n' };
    for (const [file, content] of Object.entries(files)) {
      await fsp.mkdir(path.dirname(path.join(home, file)), { recursive: true });
      await fsp.writeFile(path.join(home, file), content);
    }
    const script = ['set -euo pipefail', 'cd ~', ...blocks].join('\n');
    const env = testEnv({ HOME: home, PATH: `${bin}:${process.env.PATH ?? ''}`, ARCA_PASSWORD: undefined, ARCA_REPOSITORY: undefined });
    try {
      await run('bash', ['-c', script], { env, cwd: home });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`the examples of ${name} failed:\n${e.stderr ?? ''}\n--- stdout ---\n${e.stdout ?? ''}`);
    }
  }

  it('README.md: the runnable examples work as written', async () => {
    await runExamples('README.md');
  }, 300_000);

  it('docs/cli.md: the runnable examples work as written', async () => {
    await runExamples('docs/cli.md');
    // They restored what they say: the layout below the target, and only what --include chose.
    const home = path.join(dir, 'cli');
    expect(await fsp.readFile(path.join(home, 'restored', home, 'data', 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(await fsp.readdir(path.join(home, 'only-docs', home, 'data', 'docs'))).toEqual(['guide.md']);
  }, 300_000);

  it('docs/cli.md: the reference is what the parser prints (npm run gen:cli-docs)', async () => {
    const doc = await read('docs/cli.md');
    expect(doc, 'docs/cli.md is stale: run npm run gen:cli-docs').toBe(withReference(doc, renderReference()));
  });

  it('README.md: the folder table lists exactly the folders of the repository', async () => {
    const readme = await read('README.md');
    const table = readme.slice(readme.indexOf('## Folders'), readme.indexOf('## Development'));
    const listed = [...table.matchAll(/^\| `([^`/]+)\/` \|/gm)].map((m) => m[1]).sort();
    const { stdout } = await run('git', ['ls-tree', '-d', '--name-only', 'HEAD'], { cwd: ROOT });
    const tracked = stdout.split('\n').filter((n) => n !== '' && !n.startsWith('.')).sort();
    expect(listed).toEqual(tracked);
  });
});
