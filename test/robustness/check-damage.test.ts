import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexName, packName, snapshotName } from '../../repository/object-names.ts';
import type { Repository } from '../../repository/repository.ts';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';
import { cliEnv, initRepo, openRepo, writeRandomFile } from './helpers.ts';

/**
 * `arca check` on a copy of a small repository with one byte flipped in a pack (inside a file's
 * data), in a tree, in the index file and in the snapshot. Each must be found, by `--read-data`
 * and by the `--read-data-subset` that covers the damaged pack, with exit code 1 and a `--json`
 * report that names exactly the damaged objects and what they take with them; subsets that do not
 * cover a damaged pack read their packs and find nothing.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
/** Parts for --read-data-subset N/PARTS: every pack lies in exactly one. */
const PARTS = 3;

interface JsonReport {
  readonly problems: Array<Record<string, unknown> & { kind: string; description: string }>;
  readonly notices: Array<Record<string, unknown>>;
  readonly snapshotsChecked: number;
  readonly packsChecked: number;
  readonly packsRead: number;
  readonly blobsRead: number;
  readonly unusableBlobs: string[];
}

interface StoredBlob {
  readonly id: string;
  readonly type: 'data' | 'tree';
  readonly pack: string;
  readonly offset: number;
  readonly length: number;
}

/** Where the snapshot's objects are: every blob, and which file or directory each belongs to. */
interface Layout {
  readonly snapshot: string;
  readonly index: string;
  readonly blobs: Map<string, StoredBlob>;
  /** Data blob ID → path of the file it belongs to. */
  readonly fileOf: Map<string, string>;
  /** Directory path → ID of its tree. */
  readonly treeOf: Map<string, string>;
}

async function layoutOf(repo: Repository): Promise<Layout> {
  await repo.loadIndex();
  const blobs = new Map<string, StoredBlob>();
  for (const [id, loc] of repo.index.entries()) {
    blobs.set(id.toString('hex'), { id: id.toString('hex'), type: loc.type, pack: loc.packId.toString('hex'), offset: loc.offset, length: loc.length });
  }
  const [snapshot, ...more] = await repo.listSnapshotIds();
  if (snapshot === undefined || more.length > 0) throw new Error('expected exactly one snapshot');
  const indexes: string[] = [];
  await repo.forEachIndexFile((name) => { indexes.push(name); });
  if (indexes.length !== 1) throw new Error(`expected exactly one index file, found ${indexes.length}`);
  const fileOf = new Map<string, string>();
  const treeOf = new Map<string, string>();
  const walk = async (tree: Buffer, dir: string): Promise<void> => {
    treeOf.set(dir, tree.toString('hex'));
    for (const node of (await repo.loadTree(tree)).nodes) {
      const child = `${dir}/${node.name.toString()}`;
      if (node.type === 'dir') await walk(node.subtree, child);
      if (node.type === 'file') for (const id of node.content) fileOf.set(id.toString('hex'), child);
    }
  };
  await walk(Buffer.from((await repo.loadSnapshot(snapshot)).tree, 'hex'), '');
  return { snapshot, index: indexes[0] ?? '', blobs, fileOf, treeOf };
}

/** Matchers for the free-text fields of a problem. */
const anyText = expect.any(String) as string;
const mentioning = (text: string): string => expect.stringContaining(text) as string;

async function flipByte(file: string, at: number): Promise<void> {
  const bytes = await fsp.readFile(file);
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  await fsp.writeFile(file, bytes);
}

describe('check finds flipped bytes', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let src: string;
  let pristine: string;
  let layout: Layout;
  let packs: string[];
  let copies = 0;

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-check-damage-'));
    src = path.join(base, 'src');
    await writeRandomFile(path.join(src, 'big.bin'), 3 * MiB + 4321);
    await writeRandomFile(path.join(src, 'sub', 'medium.bin'), 400 * KiB);
    await fsp.writeFile(path.join(src, 'sub', 'small.txt'), 'small\n');
    pristine = path.join(base, 'pristine');
    // Small chunks and packs: several packs, so that a subset can leave the damaged one out.
    await initRepo(pristine, { packSize: 1 * MiB, chunker: { minSize: 64 * KiB, avgSize: 256 * KiB, maxSize: 1 * MiB } });
    await arcaOk(['backup', '--repo', pristine, '--json', src], { env: cliEnv(path.join(base, 'cache')) });
    layout = await layoutOf(await openRepo(pristine));
    packs = [...new Set([...layout.blobs.values()].map((b) => b.pack))];
    expect(packs.length).toBeGreaterThanOrEqual(PARTS + 1);
  });
  afterAll(async () => cleanup());

  /** A fresh copy of the pristine repository, damaged by `damage` (given the copy's directory). */
  async function damagedCopy(damage: (repo: string) => Promise<void>): Promise<string> {
    const repo = path.join(base, `copy-${++copies}`);
    await fsp.cp(pristine, repo, { recursive: true });
    await damage(repo);
    return repo;
  }

  async function check(repo: string, ...args: string[]): Promise<{ code: number | null; report: JsonReport; stderr: string }> {
    const r = await runArca(['check', '--repo', repo, '--json', ...args], { env: cliEnv(path.join(base, 'check-cache')) });
    return { code: r.code, report: summaryOf(r.stdout) as unknown as JsonReport, stderr: r.stderr };
  }

  /** Runs every part of --read-data-subset N/PARTS; the reports in part order. */
  async function checkParts(repo: string): Promise<Array<{ code: number | null; report: JsonReport }>> {
    const out = [];
    for (let n = 1; n <= PARTS; n++) out.push(await check(repo, '--read-data-subset', `${n}/${PARTS}`));
    // Together the parts read every pack exactly once.
    expect(out.reduce((sum, { report }) => sum + report.packsRead, 0)).toBe(packs.length);
    return out;
  }

  it('an undamaged repository checks clean, reading every pack and blob', async () => {
    const { code, report } = await check(pristine, '--read-data');
    expect(code).toBe(0);
    expect(report).toMatchObject({ problems: [], notices: [], snapshotsChecked: 1, packsChecked: packs.length, packsRead: packs.length, blobsRead: layout.blobs.size, unusableBlobs: [] });
  });

  it('a pack: a damaged file found by reading it, by --read-data and by the subset that covers it', async () => {
    // A data blob of big.bin, in a pack that holds no tree (so only the file is lost).
    const treePacks = new Set([...layout.blobs.values()].filter((b) => b.type === 'tree').map((b) => b.pack));
    const blob = [...layout.blobs.values()].find((b) => b.type === 'data' && !treePacks.has(b.pack) && layout.fileOf.get(b.id) === `${src}/big.bin`);
    if (blob === undefined) throw new Error('no data blob of big.bin in a pack without trees');
    const repo = await damagedCopy((r) => flipByte(path.join(r, packName(blob.pack)), blob.offset + Math.floor(blob.length / 2)));
    const expected = [
      { kind: 'pack-damaged', pack: blob.pack, message: 'its content does not match its name', description: mentioning(blob.pack) },
      { kind: 'blob-damaged', pack: blob.pack, blob: blob.id, message: anyText, description: mentioning(blob.id) },
      { kind: 'file-data-damaged', snapshot: layout.snapshot, path: `${src}/big.bin`, blob: blob.id, description: mentioning(`${src}/big.bin`) },
    ];

    // Checking the structure only cannot see inside a pack.
    const structure = await check(repo);
    expect(structure.code).toBe(0);
    expect(structure.report.problems).toEqual([]);

    const full = await check(repo, '--read-data');
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/the repository has 3 errors/);
    expect(full.report.problems).toEqual(expected);
    // Every blob was read but the damaged one.
    expect(full.report).toMatchObject({ packsRead: packs.length, blobsRead: layout.blobs.size - 1, unusableBlobs: [blob.id] });
    expect((await check(repo, '--read-data-subset', '100%')).report.problems).toEqual(expected);

    const parts = await checkParts(repo);
    const covering = parts.filter(({ code }) => code === 1);
    expect(covering).toHaveLength(1);
    expect(covering[0]?.report.problems).toEqual(expected);
    for (const { code, report } of parts.filter((p) => p.code !== 1)) {
      expect(code).toBe(0);
      expect(report.problems).toEqual([]);
    }
  });

  it('a tree: its directory found unreadable, and its blob damaged by the subset that covers its pack', async () => {
    const tree = layout.treeOf.get(`${src}/sub`);
    const blob = layout.blobs.get(tree ?? '');
    if (blob === undefined) throw new Error(`no tree for ${src}/sub`);
    const repo = await damagedCopy((r) => flipByte(path.join(r, packName(blob.pack)), blob.offset + Math.floor(blob.length / 2)));
    const unreadable = { kind: 'tree-unreadable', snapshot: layout.snapshot, path: `${src}/sub`, tree: blob.id, message: anyText, description: mentioning(`${src}/sub`) };
    const expected = [
      { kind: 'pack-damaged', pack: blob.pack, message: 'its content does not match its name', description: anyText },
      { kind: 'blob-damaged', pack: blob.pack, blob: blob.id, message: anyText, description: anyText },
      unreadable,
    ];

    const full = await check(repo, '--read-data');
    expect(full.code).toBe(1);
    expect(full.report.problems).toEqual(expected);
    expect(full.report).toMatchObject({ blobsRead: layout.blobs.size - 1, unusableBlobs: [blob.id] });

    // Every part loads the trees, so every part finds the directory; only one reads the pack.
    const parts = await checkParts(repo);
    for (const { code } of parts) expect(code).toBe(1);
    const covering = parts.filter(({ report }) => report.problems.length > 1);
    expect(covering).toHaveLength(1);
    expect(covering[0]?.report.problems).toEqual(expected);
    for (const { report } of parts.filter((p) => p !== covering[0])) expect(report.problems).toEqual([unreadable]);
  });

  it('the index file: found unreadable, and the snapshot it leaves without blobs', async () => {
    const repo = await damagedCopy((r) => flipByte(path.join(r, layout.index), 40));
    const indexId = layout.index.slice(layout.index.lastIndexOf('/') + 1);
    expect(layout.index).toBe(indexName(indexId));
    const root = layout.treeOf.get('') ?? '';
    const expected = [
      { kind: 'index-unreadable', index: layout.index, message: anyText, description: mentioning(indexId) },
      { kind: 'tree-unreadable', snapshot: layout.snapshot, path: '', tree: root, message: anyText, description: mentioning(root) },
    ];
    for (const args of [['--read-data'], ['--read-data-subset', `1/${PARTS}`]]) {
      const { code, report } = await check(repo, ...args);
      expect(code).toBe(1);
      expect(report.problems).toEqual(expected);
      // With no index, no pack is known to hold anything: each is reported as left over, none is read.
      expect(report.notices.map((n) => n.pack).sort()).toEqual([...packs].sort());
      expect(report.packsRead).toBe(0);
    }
  });

  it('the snapshot: found unreadable, while every pack still reads clean', async () => {
    const repo = await damagedCopy((r) => flipByte(path.join(r, snapshotName(layout.snapshot)), 40));
    const expected = [{ kind: 'snapshot-unreadable', snapshot: layout.snapshot, message: anyText, description: mentioning(layout.snapshot) }];
    const full = await check(repo, '--read-data');
    expect(full.code).toBe(1);
    expect(full.report.problems).toEqual(expected);
    expect(full.report).toMatchObject({ snapshotsChecked: 1, packsRead: packs.length, blobsRead: layout.blobs.size });
    for (const { code, report } of await checkParts(repo)) {
      expect(code).toBe(1);
      expect(report.problems).toEqual(expected);
    }
  });
});
