import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeBlob } from '../../repository/blob/blob-codec.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import type { Repository } from '../../repository/repository.ts';
import { encodeTree, type NodeMeta, type TreeNode } from '../../repository/tree/tree.ts';
import { runArca, tempDir } from '../support/cli.ts';
import { cliEnv, fingerprint, initRepo, stderrProblems } from './helpers.ts';

/**
 * Hostile snapshots written straight through the repository API (encodeTree does not check
 * names, decodeTree does) and hostile restore targets (symlinks planted where the snapshot has a
 * directory or a file). A restore must never write outside its target.
 */

const TIME = 1_700_000_000_123_456_789n;
let nextInode = 1n;

function meta(name: string | Buffer, mode: number): NodeMeta {
  return {
    name: Buffer.isBuffer(name) ? name : Buffer.from(name), mode, uid: 0, gid: 0,
    mtimeNs: TIME, atimeNs: TIME, ctimeNs: TIME, inode: nextInode++, deviceId: 1n, links: 1,
  };
}

/** What a test snapshot holds, in a form that is quick to write. */
type Spec =
  | { readonly file: string | Buffer; readonly content: string }
  | { readonly dir: string | Buffer; readonly entries: readonly Spec[] }
  | { readonly symlink: string | Buffer; readonly target: string };

describe('restore never writes outside its target', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let repoDir: string;
  let repo: Repository;
  /** Per test: `work/target` is restored into; `work/sentinel` and `outside` must not change. */
  let work: string;
  let target: string;
  let outside: string;
  let runs = 0;

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-paths-'));
    repoDir = path.join(base, 'repo');
    repo = await initRepo(repoDir);
  });
  afterAll(async () => cleanup());

  beforeEach(async () => {
    work = path.join(base, `run${++runs}`);
    target = path.join(work, 'target');
    outside = path.join(work, 'outside');
    await fsp.mkdir(path.join(work, 'sentinel'), { recursive: true });
    await fsp.writeFile(path.join(work, 'sentinel', 'keep.txt'), 'sentinel\n');
    await fsp.mkdir(path.join(outside, 'dir'), { recursive: true });
    await fsp.writeFile(path.join(outside, 'dir', 'existing.txt'), 'outside dir file\n');
    await fsp.writeFile(path.join(outside, 'f'), 'ORIGINAL outside file\n');
  });

  async function writeTree(writer: BlobWriter, specs: readonly Spec[]): Promise<Buffer> {
    const nodes: TreeNode[] = [];
    for (const spec of specs) {
      if ('file' in spec) {
        const data = Buffer.from(spec.content);
        const content: Buffer[] = [];
        if (data.length > 0) {
          const blob = encodeBlob(repo.keys, data, repo.config.compression.level);
          await writer.addIfNew('data', blob);
          content.push(blob.id);
        }
        nodes.push({ ...meta(spec.file, 0o644), type: 'file', size: data.length, content });
      } else if ('dir' in spec) {
        nodes.push({ ...meta(spec.dir, 0o755), type: 'dir', subtree: await writeTree(writer, spec.entries) });
      } else {
        nodes.push({ ...meta(spec.symlink, 0o777), type: 'symlink', linkTarget: Buffer.from(spec.target) });
      }
    }
    const blob = encodeBlob(repo.keys, encodeTree({ nodes }), repo.config.compression.level);
    await writer.addIfNew('tree', blob);
    return blob.id;
  }

  /** Stores a snapshot whose root tree holds `specs`; returns its ID. */
  async function snapshotOf(specs: readonly Spec[]): Promise<string> {
    const writer = new BlobWriter(repo);
    const root = await writeTree(writer, specs);
    await writer.flush();
    return repo.saveSnapshot({
      version: 1, time: new Date().toISOString(), tree: root.toString('hex'), paths: ['/hostile'],
      hostname: 'test', username: 'root', tags: [], program_version: 'test',
    });
  }

  function restore(id: string): ReturnType<typeof runArca> {
    return runArca(['restore', id, '--repo', repoDir, '--target', target], { env: cliEnv(path.join(base, 'cache')) });
  }

  /** Everything beside the target (the sentinel and the outside directory). */
  async function besideTarget(): Promise<string[]> {
    return (await fingerprint(work)).filter((line) => !line.startsWith('/target'));
  }

  const sentinelPath = (): string => path.join(work, 'sentinel', 'pwned');

  /** Names that must be refused, and trees that would put a file beside the target through them. */
  const hostile: ReadonlyArray<[string, () => Spec[]]> = [
    ['".."', () => [{ dir: '..', entries: [{ dir: 'sentinel', entries: [{ file: 'pwned', content: 'x' }] }] }]],
    ['"../x"', () => [{ file: '../sentinel/pwned', content: 'x' }]],
    ['"a/b"', () => [{ file: 'a/b', content: 'x' }]],
    ['an absolute name', () => [{ file: sentinelPath(), content: 'x' }]],
    ['"."', () => [{ dir: '.', entries: [{ file: 'dot-file', content: 'x' }] }]],
    ['an empty name', () => [{ file: '', content: 'x' }]],
    ['a name with NUL', () => [{ file: Buffer.from('bad\0name'), content: 'x' }]],
    ['".." below a directory', () => [{ file: 'aaa-ok.txt', content: 'ok' }, { dir: 'd', entries: [{ dir: '..', entries: [{ dir: '..', entries: [{ dir: 'sentinel', entries: [{ file: 'pwned', content: 'x' }] }] }] }] }]],
    ['"../x" below a directory', () => [{ dir: 'd', entries: [{ file: '../../sentinel/pwned', content: 'x' }] }]],
    // Two nodes of one name: a symlink out of the target, then a directory to write through it.
    ['"a" twice, a symlink and a directory', () => [{ symlink: 'a', target: path.join(work, 'sentinel') }, { dir: 'a', entries: [{ file: 'pwned', content: 'x' }] }]],
  ];

  for (const [label, specs] of hostile) {
    it(`refuses a snapshot with a node named ${label}, writing nothing outside the target`, async () => {
      const id = await snapshotOf(specs());
      const before = await besideTarget();
      const r = await restore(id);
      expect(r.code, r.stderr).toBe(1);
      expect(stderrProblems(r.stderr)).toEqual([]);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/unsafe|corrupt/i);
      expect(await besideTarget()).toEqual(before);
      await expect(fsp.lstat(sentinelPath())).rejects.toThrow(/ENOENT/);
    });
  }

  it('replaces a planted symlink to an outside directory with a real directory', async () => {
    await fsp.mkdir(target);
    await fsp.symlink(path.join(outside, 'dir'), path.join(target, 'a'));
    const id = await snapshotOf([{ dir: 'a', entries: [{ file: 'file', content: 'restored file\n' }, { dir: 'sub', entries: [{ file: 'deep.txt', content: 'deep\n' }] }] }]);
    const before = await besideTarget();
    const r = await restore(id);
    expect(r.code, r.stderr).toBe(0);
    const a = await fsp.lstat(path.join(target, 'a'));
    expect(a.isDirectory() && !a.isSymbolicLink()).toBe(true);
    expect(await fsp.readFile(path.join(target, 'a', 'file'), 'utf8')).toBe('restored file\n');
    expect(await fsp.readFile(path.join(target, 'a', 'sub', 'deep.txt'), 'utf8')).toBe('deep\n');
    expect(await besideTarget()).toEqual(before);
    expect(await fsp.readdir(path.join(outside, 'dir'))).toEqual(['existing.txt']);
  });

  it('replaces planted symlinks at file paths, to an existing outside file or to a path that does not exist yet', async () => {
    await fsp.mkdir(target);
    await fsp.symlink(path.join(outside, 'f'), path.join(target, 'f'));
    await fsp.symlink(path.join(outside, 'created-through-link'), path.join(target, 'g'));
    await fsp.symlink(path.join(outside, 'f'), path.join(target, 'empty'));
    const id = await snapshotOf([
      { file: 'f', content: 'restored f\n' },
      { file: 'g', content: 'restored g\n' },
      { file: 'empty', content: '' },
    ]);
    const before = await besideTarget();
    const r = await restore(id);
    expect(r.code, r.stderr).toBe(0);
    for (const [name, content] of [['f', 'restored f\n'], ['g', 'restored g\n'], ['empty', '']] as const) {
      const st = await fsp.lstat(path.join(target, name));
      expect(st.isFile(), name).toBe(true);
      expect(await fsp.readFile(path.join(target, name), 'utf8')).toBe(content);
    }
    expect(await besideTarget()).toEqual(before);
    expect(await fsp.readFile(path.join(outside, 'f'), 'utf8')).toBe('ORIGINAL outside file\n');
    await expect(fsp.lstat(path.join(outside, 'created-through-link'))).rejects.toThrow(/ENOENT/);
  });

  it('a snapshot that restores a symlink, then one with a directory of that name, cannot be chained to escape', async () => {
    const first = await snapshotOf([{ symlink: 'a', target: path.join(outside, 'dir') }, { symlink: 'f', target: path.join(outside, 'f') }]);
    const second = await snapshotOf([{ dir: 'a', entries: [{ file: 'file', content: 'inside\n' }] }, { file: 'f', content: 'inside f\n' }]);
    const before = await besideTarget();
    expect((await restore(first)).code).toBe(0);
    expect(await fsp.readlink(path.join(target, 'a'))).toBe(path.join(outside, 'dir'));
    const r = await restore(second);
    expect(r.code, r.stderr).toBe(0);
    expect((await fsp.lstat(path.join(target, 'a'))).isDirectory()).toBe(true);
    expect(await fsp.readFile(path.join(target, 'a', 'file'), 'utf8')).toBe('inside\n');
    expect(await fsp.readFile(path.join(target, 'f'), 'utf8')).toBe('inside f\n');
    expect(await besideTarget()).toEqual(before);
  });
});
