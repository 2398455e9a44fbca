import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';

/** Every path under `root` (directories with a trailing "/"), relative and sorted. */
async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    for (const entry of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        out.push(`${child}/`);
        await visit(child);
      } else {
        out.push(child);
      }
    }
  };
  await visit('');
  return out.sort();
}

const FILES = [
  'a.txt', 'a.tmp', 'notes.md',
  'docs/guide.md', 'docs/guide.tmp', 'docs/img/logo.png', 'docs/img/cache/thumb.png',
  'cache/big.bin', 'cache/nested/deeper.bin',
  'logs/app.log', 'logs/old/app.1.log', 'logs/keep.txt',
  'src/main.ts', 'src/main.log', 'src/skip-me.ts', 'src/skip-me-too/x.ts',
];

describe('--exclude and --include', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('arca-filters-'));
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    for (const f of FILES) {
      await fsp.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fsp.writeFile(path.join(src, f), `${f}\n`);
    }
    await arcaOk(['init', '--repo', repo]);
  });
  afterEach(async () => cleanup());

  async function restored(snapshot: string, args: readonly string[], name: string): Promise<string[]> {
    const target = path.join(dir, name);
    await arcaOk(['restore', snapshot, '--repo', repo, '--target', target, ...args]);
    return listTree(path.join(target, src));
  }

  it('backup --exclude leaves out base-name matches at any depth, whole directories, and absolute-path matches', async () => {
    const { stdout } = await arcaOk(['backup', '--repo', repo, '--json', src, '--exclude', '*.tmp', '--exclude', 'cache', '--exclude', `${src}/src/skip-*`]);
    const summary = summaryOf(stdout);
    // Excluded files are not even read.
    expect(summary).toMatchObject({ files_new: 9, total_files_processed: 9 });
    const expected = [
      'a.txt', 'docs/', 'docs/guide.md', 'docs/img/', 'docs/img/logo.png', 'logs/', 'logs/app.log', 'logs/keep.txt', 'logs/old/',
      'logs/old/app.1.log', 'notes.md', 'src/', 'src/main.log', 'src/main.ts',
    ];
    expect(await restored(String(summary.snapshot_id), [], 'all')).toEqual(expected);
    // ls agrees: nothing excluded is in the snapshot.
    const ls = (await arcaOk(['ls', 'latest', '--repo', repo])).stdout.trim().split('\n');
    expect(ls.filter((p) => p.startsWith(`${src}/`)).map((p) => p.slice(src.length + 1)).sort()).toEqual(expected.map((p) => p.replace(/\/$/, '')).sort());
  });

  it('restore --include selects paths with their contents and the directories leading to them', async () => {
    const snapshot = String(summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout).snapshot_id);
    // An absolute pattern selects a directory with everything below it.
    expect(await restored(snapshot, ['--include', `${src}/docs`], 'docs')).toEqual([
      'docs/', 'docs/guide.md', 'docs/guide.tmp', 'docs/img/', 'docs/img/cache/', 'docs/img/cache/thumb.png', 'docs/img/logo.png',
    ]);
    // A base-name pattern selects matches at any depth; several --include add up.
    expect(await restored(snapshot, ['--include', '*.md', '--include', `${src}/src/main.ts`], 'md')).toEqual([
      'docs/', 'docs/guide.md', 'notes.md', 'src/', 'src/main.ts',
    ]);
    // A pattern that matches nothing restores nothing.
    const none = path.join(dir, 'none');
    const summary = summaryOf((await arcaOk(['restore', snapshot, '--repo', repo, '--target', none, '--include', '*.nothing', '--json'])).stdout);
    expect(summary).toMatchObject({ files_restored: 0, dirs_restored: 0, errors: 0 });
    expect(await fsp.readdir(none)).toEqual([]);
  });

  it('restore --exclude drops matches at any depth, also inside what --include selects', async () => {
    const snapshot = String(summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout).snapshot_id);
    expect(await restored(snapshot, ['--exclude', '*.log', '--exclude', 'cache', '--exclude', `${src}/src`], 'excluded')).toEqual([
      'a.tmp', 'a.txt', 'docs/', 'docs/guide.md', 'docs/guide.tmp', 'docs/img/', 'docs/img/logo.png', 'logs/', 'logs/keep.txt', 'logs/old/', 'notes.md',
    ]);
    expect(await restored(snapshot, ['--include', `${src}/logs`, '--exclude', '*.log'], 'both')).toEqual(['logs/', 'logs/keep.txt', 'logs/old/']);
  });
});
