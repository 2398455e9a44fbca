import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';

/**
 * The read-only commands on one repository holding three snapshots of one directory:
 * S1 (host alpha, tags daily+first), S2 (alpha, daily; after changes, S1 is its parent) and
 * S3 (host beta, weekly; same content as S2, no parent).
 */

interface SnapshotJson {
  readonly id: string;
  readonly short_id: string;
  readonly time: string;
  readonly hostname: string;
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  readonly tree: string;
  readonly parent?: string;
}

interface LsLine {
  readonly message_type: string;
  readonly id?: string;
  readonly path: string;
  readonly type: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: string;
}

interface TreeJson {
  readonly nodes: ReadonlyArray<{ readonly name: string; readonly type: string; readonly subtree?: string; readonly size?: number; readonly content?: readonly string[] }>;
}

interface IndexJson {
  readonly packs: ReadonlyArray<{ readonly id: string; readonly blobs: ReadonlyArray<{ readonly id: string; readonly type: string; readonly length: number; readonly raw_length: number }> }>;
}

const HEX64 = /^[0-9a-f]{64}$/;
const COMPRESSIBLE = 'all work and no play makes jack a dull boy\n'.repeat(25_000); // ~1 MiB

describe('inspecting a repository: backup --json, snapshots, ls, diff, stats, cat', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  let started: number;
  let repoId: string;
  const summaries: Array<Record<string, unknown>> = [];
  const ids: string[] = [];
  const sizesS1: Record<string, number> = {};
  const sizesS2: Record<string, number> = {};

  const arca = async (...args: string[]): Promise<string> => (await arcaOk([...args, '--repo', repo])).stdout;
  const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await arca(...args, '--json')) as T;
  const lsLines = async (...args: string[]): Promise<LsLine[]> => (await arca('ls', ...args, '--json')).trim().split('\n').map((l) => JSON.parse(l) as LsLine);
  const restoredId = async (...args: string[]): Promise<unknown> => {
    const target = await fsp.mkdtemp(path.join(dir, 'restore-'));
    return summaryOf(await arca('restore', ...args, '--target', target, '--json')).snapshot_id;
  };

  async function writeFiles(files: Record<string, string>, sizes: Record<string, number>): Promise<void> {
    for (const [name, content] of Object.entries(files)) {
      await fsp.mkdir(path.dirname(path.join(src, name)), { recursive: true });
      await fsp.writeFile(path.join(src, name), content);
    }
    for (const name of Object.keys(sizes)) Reflect.deleteProperty(sizes, name);
    const walk = async (rel: string): Promise<void> => {
      for (const e of await fsp.readdir(path.join(src, rel), { withFileTypes: true })) {
        const child = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(child);
        else if (e.isFile()) sizes[child] = (await fsp.stat(path.join(src, child))).size;
      }
    };
    await walk('');
  }

  async function backup(...args: string[]): Promise<void> {
    const summary = summaryOf(await arca('backup', src, '--json', ...args));
    summaries.push(summary);
    ids.push(String(summary.snapshot_id));
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('arca-inspect-'));
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    started = Date.now();
    repoId = String(summaryOf(await arca('init', '--json')).id);
    await writeFiles({ 'keep.txt': 'unchanged\n', 'change.txt': 'v1\n', 'remove.txt': 'soon gone\n', 'dir/inner.txt': 'inner\n', 'compressible.txt': COMPRESSIBLE }, sizesS1);
    await fsp.chmod(path.join(src, 'change.txt'), 0o640);
    await fsp.symlink('keep.txt', path.join(src, 'link'));
    await backup('--host', 'alpha', '--tag', 'daily', '--tag', 'first');
    await fsp.writeFile(path.join(src, 'change.txt'), 'version two, longer\n');
    await fsp.rm(path.join(src, 'remove.txt'));
    await writeFiles({ 'added.txt': 'new\n', 'newdir/x.txt': 'x\n' }, sizesS2);
    await backup('--host', 'alpha', '--tag', 'daily');
    await backup('--host', 'beta', '--tag', 'weekly');
  });
  afterAll(async () => cleanup());

  it('backup --json ends with a summary carrying the contract fields', () => {
    const [s1, s2, s3] = summaries;
    for (const s of summaries) {
      expect(s.message_type).toBe('summary');
      expect(s.snapshot_id).toMatch(HEX64);
      for (const field of ['files_new', 'files_changed', 'files_unmodified', 'dirs_new', 'data_added', 'total_files_processed', 'total_bytes_processed', 'total_duration']) {
        expect(typeof s[field], field).toBe('number');
      }
      expect(s.total_duration).toBeGreaterThan(0);
    }
    const bytes = (sizes: Record<string, number>): number => Object.values(sizes).reduce((a, b) => a + b, 0);
    // S1: everything new; "src" and "src/dir" are the new directories.
    expect(s1).toMatchObject({ files_new: 5, files_changed: 0, files_unmodified: 0, dirs_new: 2, total_files_processed: 5, total_bytes_processed: bytes(sizesS1) });
    // data_added counts stored bytes: compressed, so well below what was read.
    expect(s1?.data_added).toBeGreaterThan(0);
    expect(s1?.data_added).toBeLessThan(bytes(sizesS1) / 4);
    // S2 compares against S1 (same host and paths).
    expect(s2).toMatchObject({ files_new: 2, files_changed: 1, files_unmodified: 3, dirs_new: 1, total_files_processed: 6, total_bytes_processed: bytes(sizesS2) });
    // S3 has another host, so no parent: all files are new to it, but their data is in the repository.
    expect(s3).toMatchObject({ files_new: 6, files_changed: 0, files_unmodified: 0, total_files_processed: 6 });
    expect(s3?.data_added).toBeLessThan(4096); // a few trees at most
  });

  it('snapshots --json lists every snapshot with the contract fields, and filters by --tag and --host', async () => {
    const all = await json<SnapshotJson[]>('snapshots');
    expect(all.map((s) => s.id).sort()).toEqual([...ids].sort());
    for (const s of all) {
      expect(s.id).toMatch(HEX64);
      expect(s.short_id).toBe(s.id.slice(0, 8));
      expect(s.tree).toMatch(HEX64);
      expect(s.paths).toEqual([src]);
      expect(Date.parse(s.time)).toBeGreaterThanOrEqual(started - 1000);
      expect(Date.parse(s.time)).toBeLessThanOrEqual(Date.now());
    }
    const byId = new Map(all.map((s) => [s.id, s]));
    expect(byId.get(ids[0] ?? '')).toMatchObject({ hostname: 'alpha', tags: ['daily', 'first'] });
    expect(byId.get(ids[1] ?? '')).toMatchObject({ hostname: 'alpha', tags: ['daily'], parent: ids[0] });
    expect(byId.get(ids[2] ?? '')).toMatchObject({ hostname: 'beta', tags: ['weekly'] });
    const idsOf = async (...filter: string[]): Promise<string[]> => (await json<SnapshotJson[]>('snapshots', ...filter)).map((s) => s.id).sort();
    expect(await idsOf('--tag', 'daily')).toEqual([ids[0], ids[1]].sort());
    expect(await idsOf('--tag', 'first')).toEqual([ids[0]]);
    expect(await idsOf('--host', 'beta')).toEqual([ids[2]]);
    expect(await idsOf('--host', 'alpha')).toEqual([ids[0], ids[1]].sort());
    expect(await idsOf('--host', 'alpha', '--tag', 'weekly')).toEqual([]);
    expect(await idsOf('--tag', 'no-such-tag')).toEqual([]);
  });

  it('resolves snapshots by full ID, 8-character prefix and latest (with --host/--tag)', async () => {
    const [s1 = '', s2 = '', s3 = ''] = ids;
    expect((await lsLines(s2))[0]).toMatchObject({ message_type: 'snapshot', id: s2 });
    expect((await lsLines(s2.slice(0, 8)))[0]).toMatchObject({ message_type: 'snapshot', id: s2 });
    expect((await lsLines(s1.slice(0, 12)))[0]).toMatchObject({ message_type: 'snapshot', id: s1 });
    expect((await lsLines('latest'))[0]).toMatchObject({ message_type: 'snapshot', id: s3 });
    expect(await restoredId(s1.slice(0, 8))).toBe(s1);
    expect(await restoredId('latest')).toBe(s3);
    expect(await restoredId('latest', '--host', 'alpha')).toBe(s2);
    expect(await restoredId('latest', '--tag', 'first')).toBe(s1);
    // Not a snapshot: too short a prefix, a prefix of nothing, a latest that matches nothing.
    const tooShort = await runArca(['ls', s1.slice(0, 7), '--repo', repo]);
    expect(tooShort.code).toBe(1);
    expect(tooShort.stderr).toMatch(/prefix|8/);
    const unknown = (s1.startsWith('0') ? 'f' : '0').repeat(8);
    const missing = await runArca(['ls', unknown, '--repo', repo]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    const noMatch = await runArca(['restore', 'latest', '--host', 'gamma', '--repo', repo, '--target', path.join(dir, 'never')]);
    expect(noMatch.code).toBe(1);
  });

  it('ls --json prints the snapshot, then one object per node with path, type, size, mode and mtime', async () => {
    const lines = await lsLines(ids[1] ?? '');
    const [first, ...nodes] = lines;
    expect(first).toMatchObject({ message_type: 'snapshot', id: ids[1], short_id: ids[1]?.slice(0, 8), paths: [src], hostname: 'alpha' });
    expect(nodes.every((n) => n.message_type === 'node')).toBe(true);
    const under = nodes.filter((n) => n.path.startsWith(`${src}/`));
    expect(under.map((n) => n.path.slice(src.length + 1)).sort()).toEqual(['added.txt', 'change.txt', 'compressible.txt', 'dir', 'dir/inner.txt', 'keep.txt', 'link', 'newdir', 'newdir/x.txt']);
    // The directories leading to the backed-up path are in the snapshot too.
    expect(nodes.find((n) => n.path === src)).toMatchObject({ type: 'dir' });
    expect(nodes.find((n) => n.path === path.dirname(src))).toMatchObject({ type: 'dir' });
    for (const n of under) {
      const st = await fsp.lstat(path.join(src, n.path.slice(src.length + 1)), { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'symlink';
      expect(n.type, n.path).toBe(type);
      if (type === 'file') expect(n.size, n.path).toBe(Number(st.size));
      expect(n.mode & 0o7777, n.path).toBe(Number(st.mode) & 0o7777);
      expect(Date.parse(n.mtime), n.path).toBe(Number(st.mtimeNs / 1_000_000n));
    }
    expect(under.find((n) => n.path === `${src}/change.txt`)).toMatchObject({ size: 'version two, longer\n'.length });
    expect((under.find((n) => n.path === `${src}/change.txt`)?.mode ?? 0) & 0o777).toBe(0o640);
    // A PATH argument lists that path and what is below it.
    const sub = (await lsLines(ids[1] ?? '', `${src}/dir`)).slice(1).map((n) => n.path);
    expect(sub).toEqual([`${src}/dir`, `${src}/dir/inner.txt`]);
  });

  it('diff shows added (+), removed (-) and modified (M) paths, and nothing for unchanged ones', async () => {
    const [s1 = '', s2 = '', s3 = ''] = ids;
    const parse = (out: string): string[] => out.split('\n').filter(Boolean).map((l) => {
      const m = /^([+\-MT])\s+(.*)$/.exec(l);
      if (!m) throw new Error(`unexpected diff line ${JSON.stringify(l)}`);
      return `${m[1] ?? ''} ${m[2] ?? ''}`;
    });
    // Paths below the backed-up directory, relative to it (the directories above it are not compared).
    const rel = (lines: string[]): string[] => lines.filter((l) => l.includes(` ${src}/`)).map((l) => l.replace(` ${src}/`, ' ')).sort();
    expect(rel(parse(await arca('diff', s1, s2)))).toEqual(['+ added.txt', '+ newdir', '+ newdir/x.txt', '- remove.txt', 'M change.txt']);
    expect(rel(parse(await arca('diff', s2.slice(0, 8), s1.slice(0, 8))))).toEqual(['+ remove.txt', '- added.txt', '- newdir', '- newdir/x.txt', 'M change.txt']);
    // Same content, other host: nothing under the backed-up path differs.
    expect(rel(parse(await arca('diff', s2, s3)))).toEqual([]);
    expect(await arca('diff', s1, s1)).toBe('');
  });

  it('stats --json: restore-size adds up the files, raw-data counts stored blobs once', async () => {
    const [s1 = '', s2 = '', s3 = ''] = ids;
    interface RestoreSize { total_size: number; total_file_count: number; snapshots_count: number }
    interface RawData { total_size: number; total_uncompressed_size: number; total_blob_count: number; snapshots_count: number }
    const sum = (sizes: Record<string, number>): number => Object.values(sizes).reduce((a, b) => a + b, 0);
    const r1 = await json<RestoreSize>('stats', s1);
    expect(r1).toEqual({ total_size: sum(sizesS1), total_file_count: 5, snapshots_count: 1 });
    const r2 = await json<RestoreSize>('stats', s2, '--mode', 'restore-size');
    expect(r2).toEqual({ total_size: sum(sizesS2), total_file_count: 6, snapshots_count: 1 });
    const rAll = await json<RestoreSize>('stats');
    expect(rAll).toEqual({ total_size: sum(sizesS1) + 2 * sum(sizesS2), total_file_count: 17, snapshots_count: 3 });

    const raw1 = await json<RawData>('stats', s1, '--mode', 'raw-data');
    expect(raw1.snapshots_count).toBe(1);
    // Five distinct files (one chunk each, all small) and the trees.
    expect(raw1.total_blob_count).toBeGreaterThanOrEqual(5 + 2);
    expect(raw1.total_uncompressed_size).toBeGreaterThan(sum(sizesS1));
    expect(raw1.total_size).toBeLessThan(raw1.total_uncompressed_size / 4);
    const raw2 = await json<RawData>('stats', s2, '--mode', 'raw-data');
    const raw3 = await json<RawData>('stats', s3, '--mode', 'raw-data');
    const rawAll = await json<RawData>('stats', '--mode', 'raw-data');
    expect(rawAll.snapshots_count).toBe(3);
    // Shared blobs count once: S3 adds no data blobs to S2.
    expect(rawAll.total_blob_count).toBeLessThan(raw1.total_blob_count + raw2.total_blob_count + raw3.total_blob_count);
    expect(rawAll.total_uncompressed_size).toBeLessThan(raw1.total_uncompressed_size + raw2.total_uncompressed_size);
    expect(rawAll.total_blob_count).toBeGreaterThanOrEqual(raw2.total_blob_count + 1); // remove.txt and S1's v1 are S1-only
    const bad = await runArca(['stats', '--mode', 'everything', '--repo', repo]);
    expect(bad.code).toBe(1);
  });

  it('cat prints config, snapshot, tree and index objects as JSON that agree with each other', async () => {
    const config = await json<{ id: string; chunker: { minSize: number; avgSize: number; maxSize: number } }>('cat', 'config');
    expect(config.id).toBe(repoId);
    expect(config.chunker.minSize).toBeLessThan(config.chunker.maxSize);

    const s2 = ids[1] ?? '';
    const snapshot = JSON.parse(await arca('cat', 'snapshot', s2.slice(0, 8))) as SnapshotJson;
    expect(snapshot).toMatchObject({ id: s2, hostname: 'alpha', paths: [src], tags: ['daily'] });
    const listed = (await json<SnapshotJson[]>('snapshots')).find((s) => s.id === s2);
    expect(snapshot.tree).toBe(listed?.tree);

    // Walk the trees from the root down to the backed-up directory.
    let tree = JSON.parse(await arca('cat', 'tree', snapshot.tree)) as TreeJson;
    for (const component of src.split('/').filter(Boolean)) {
      const node = tree.nodes.find((n) => n.name === component);
      expect(node, component).toMatchObject({ type: 'dir' });
      tree = JSON.parse(await arca('cat', 'tree', node?.subtree ?? '')) as TreeJson;
    }
    expect(tree.nodes.map((n) => n.name)).toEqual(['added.txt', 'change.txt', 'compressible.txt', 'dir', 'keep.txt', 'link', 'newdir']);
    const change = tree.nodes.find((n) => n.name === 'change.txt');
    expect(change).toMatchObject({ type: 'file', size: 'version two, longer\n'.length });
    expect(change?.content).toHaveLength(1);

    // Every blob of that file, and the tree itself, is in an index.
    const indexIds = (await fsp.readdir(path.join(repo, 'index'))).filter((n) => HEX64.test(n));
    expect(indexIds.length).toBeGreaterThan(0);
    const blobs = new Map<string, { type: string; raw_length: number }>();
    for (const id of indexIds) {
      const index = JSON.parse(await arca('cat', 'index', id)) as IndexJson;
      for (const pack of index.packs) {
        expect(pack.id).toMatch(HEX64);
        for (const blob of pack.blobs) blobs.set(blob.id, blob);
      }
    }
    expect(blobs.get(change?.content?.[0] ?? '')).toMatchObject({ type: 'data', raw_length: 'version two, longer\n'.length });
    expect(blobs.get(snapshot.tree)).toMatchObject({ type: 'tree' });
    const usage = await runArca(['cat', 'tree', '--repo', repo]);
    expect(usage.code).toBe(1);
  });
});
