import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, tempDir } from '../support/cli.ts';

describe('the CLI and the local cache', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  let repoId: string;

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-cli-cache-'));
    repo = path.join(base, 'repo');
    src = path.join(base, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'sub', 'a.txt'), 'hello\n');
    await arcaOk(['init', '--repo', repo], { env: { XDG_CACHE_HOME: path.join(base, 'unused') } });
    repoId = (JSON.parse((await arcaOk(['cat', 'config', '--repo', repo, '--no-cache'])).stdout) as { id: string }).id;
  });
  afterAll(async () => cleanup());

  const exists = (p: string): Promise<boolean> => fsp.stat(p).then(() => true, () => false);

  it('keeps its cache in $XDG_CACHE_HOME/arca/<repository id>, or under --cache-dir, and none with --no-cache', async () => {
    const xdg = path.join(base, 'xdg');
    await arcaOk(['backup', '--repo', repo, '--quiet', src], { env: { XDG_CACHE_HOME: xdg } });
    expect(await exists(path.join(xdg, 'arca', repoId, 'CURRENT'))).toBe(true);
    expect(await exists(path.join(xdg, 'arca', 'CACHEDIR.TAG'))).toBe(true);

    const chosen = path.join(base, 'chosen');
    const ls = await arcaOk(['ls', '--repo', repo, '--cache-dir', chosen, 'latest'], { env: { XDG_CACHE_HOME: xdg } });
    expect(ls.stdout).toContain(path.join(src, 'sub', 'a.txt'));
    expect(await exists(path.join(chosen, repoId, 'CURRENT'))).toBe(true);

    const none = path.join(base, 'none');
    await arcaOk(['backup', '--repo', repo, '--no-cache', '--quiet', src], { env: { XDG_CACHE_HOME: none } });
    await arcaOk(['restore', 'latest', '--repo', repo, '--no-cache', '--target', path.join(base, 'target')], { env: { XDG_CACHE_HOME: none } });
    expect(await exists(none)).toBe(false);
    expect(await fsp.readFile(path.join(base, 'target', src, 'sub', 'a.txt'), 'utf8')).toBe('hello\n');
  });
});
