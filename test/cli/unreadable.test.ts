import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NOBODY, isRoot, runArcaAs } from '../support/as-user.ts';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';

interface NodeLine {
  readonly message_type: string;
  readonly path: string;
  readonly type: string;
}

describe.skipIf(!isRoot)('files the backup cannot read (needs root: runs arca as another user)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('arca-unreadable-'));
    await fsp.chmod(dir, 0o755);
  });
  afterEach(async () => cleanup());

  it('are reported on stderr and left out; the rest is backed up; the exit code is 3', async () => {
    const home = path.join(dir, 'home');
    await fsp.mkdir(home);
    await fsp.chown(home, NOBODY.uid, NOBODY.gid);
    const repo = path.join(home, 'repo');
    const src = path.join(dir, 'src');
    const p = (name: string): string => path.join(src, name);
    await fsp.mkdir(p('sub'), { recursive: true });
    await fsp.writeFile(p('readable.txt'), 'anyone may read this\n');
    await fsp.writeFile(p('sub/also-readable.txt'), 'and this\n');
    await fsp.writeFile(p('secret.txt'), 'only root\n');
    await fsp.chmod(p('secret.txt'), 0o000);
    await fsp.mkdir(p('locked'));
    await fsp.writeFile(p('locked/inside.txt'), 'behind a locked door\n');
    await fsp.chmod(p('locked'), 0o000); // cannot be listed
    await fsp.mkdir(p('no-search'));
    await fsp.writeFile(p('no-search/listed-but-not-statable.txt'), 'x\n');
    await fsp.chmod(p('no-search'), 0o644); // can be listed, its entries cannot be looked at
    await fsp.chmod(src, 0o755);

    const init = await runArcaAs(NOBODY, ['init', '--repo', repo]);
    expect(init.code, init.stderr).toBe(0);
    const backup = await runArcaAs(NOBODY, ['backup', '--repo', repo, '--json', src]);
    expect(backup.code, backup.stderr).toBe(3);
    const errorLines = backup.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errorLines.map((l) => l.slice('error: '.length).split(': ')[0]).sort()).toEqual([
      p('locked'), p('no-search/listed-but-not-statable.txt'), p('secret.txt'),
    ]);
    expect(backup.stderr).toMatch(/EACCES|permission denied/i);
    expect(backup.stderr).toMatch(/3 files or directories could not be read/);
    const summary = summaryOf(backup.stdout);
    expect(summary).toMatchObject({ message_type: 'summary', files_new: 2, files_unreadable: 3 });
    expect(typeof summary.snapshot_id).toBe('string');

    // The snapshot was saved and holds the rest.
    const ls = (await arcaOk(['ls', 'latest', '--repo', repo, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as NodeLine);
    expect(ls[0]).toMatchObject({ message_type: 'snapshot', id: summary.snapshot_id });
    const under = ls.filter((n) => n.message_type === 'node' && n.path.startsWith(`${src}/`)).map((n) => `${n.path.slice(src.length + 1)} ${n.type}`);
    expect(under.sort()).toEqual(['no-search dir', 'readable.txt file', 'sub dir', 'sub/also-readable.txt file']);

    const target = path.join(dir, 'target');
    await arcaOk(['restore', 'latest', '--repo', repo, '--target', target]);
    expect(await fsp.readFile(path.join(target, src, 'readable.txt'), 'utf8')).toBe('anyone may read this\n');
    expect(await fsp.readFile(path.join(target, src, 'sub/also-readable.txt'), 'utf8')).toBe('and this\n');
    expect((await fsp.readdir(path.join(target, src))).sort()).toEqual(['no-search', 'readable.txt', 'sub']);
  });
});
