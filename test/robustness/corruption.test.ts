import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapLimit } from '../../repository/repository.ts';
import { packName } from '../../repository/object-names.ts';
import { arcaOk, runArca, tempDir, type RunResult } from '../support/cli.ts';
import { cliEnv, initRepo, listFiles, listObjectNames, openRepo, stderrProblems, treeDifferences, writeRandomFile } from './helpers.ts';

/**
 * Damages one stored object at a time (a flipped byte, or a cut) in a copy of a small repository
 * and runs the reading commands on it. Each must either fail with a clean error that names the
 * damaged object, or succeed with exactly the right output; restored bytes are always compared
 * with the source. Whenever the damage hits something the command needs, it must fail.
 */

type Kind = 'config' | 'keys' | 'data' | 'index' | 'snapshots';
type CommandName = 'snapshots' | 'ls' | 'restore';
type Mutation = { readonly op: 'flip'; readonly at: number } | { readonly op: 'truncate'; readonly length: number };

interface StoredBlob {
  readonly type: 'data' | 'tree';
  readonly offset: number;
  readonly length: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

function kindOf(name: string): Kind {
  const first = name.split('/')[0];
  if (first === 'config' || first === 'keys' || first === 'data' || first === 'index' || first === 'snapshots') return first;
  throw new Error(`unexpected object ${name} in the repository`);
}

/** Start, middle and end flips; cuts to nothing, half, and all but the last byte. */
function mutationsFor(size: number): Mutation[] {
  const flips = [...new Set([0, Math.floor(size / 2), size - 1])].map((at): Mutation => ({ op: 'flip', at }));
  const cuts = [...new Set([0, Math.floor(size / 2), size - 1])].map((length): Mutation => ({ op: 'truncate', length }));
  return [...flips, ...cuts];
}

function describeMutation(m: Mutation): string {
  return m.op === 'flip' ? `byte ${m.at} flipped` : `cut to ${m.length} bytes`;
}

async function applyMutation(file: string, m: Mutation): Promise<void> {
  if (m.op === 'truncate') {
    await fsp.truncate(file, m.length);
    return;
  }
  const bytes = await fsp.readFile(file);
  bytes[m.at] = (bytes[m.at] ?? 0) ^ 0xff;
  await fsp.writeFile(file, bytes);
}

/** What each object kind is read by, whatever bytes of it are damaged. */
const ALWAYS_NEEDED_BY: Readonly<Record<Exclude<Kind, 'data'>, readonly CommandName[]>> = {
  config: ['snapshots', 'ls', 'restore'],
  keys: ['snapshots', 'ls', 'restore'],
  snapshots: ['snapshots', 'ls', 'restore'],
  index: ['ls', 'restore'],
};

/** For a pack: the blobs the mutation damages. */
function damagedBlobs(blobs: readonly StoredBlob[], m: Mutation): StoredBlob[] {
  return blobs.filter((b) => (m.op === 'flip' ? m.at >= b.offset && m.at < b.offset + b.length : b.offset + b.length > m.length));
}

describe('damaged repository objects', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let src: string;
  let pristine: string;
  let objects: string[];
  const blobsByPack = new Map<string, StoredBlob[]>();
  const baseline = { snapshots: '', ls: '' };
  let runs = 0;
  const pristineEnv = (): Record<string, string> => cliEnv(path.join(base, 'pristine-cache'));

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-corrupt-'));
    src = path.join(base, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'hello.txt'), 'hello, world\n');
    await fsp.writeFile(path.join(src, 'empty'), '');
    await writeRandomFile(path.join(src, 'big.bin'), 3 * MiB + 12345);
    await writeRandomFile(path.join(src, 'sub', 'medium.bin'), 300 * KiB);
    await fsp.writeFile(path.join(src, 'sub', 'zeros.bin'), Buffer.alloc(700 * KiB));
    pristine = path.join(base, 'pristine');
    // Small chunks and packs, so the 3 MiB file spans several packs.
    await initRepo(pristine, { packSize: 1 * MiB, chunker: { minSize: 64 * KiB, avgSize: 256 * KiB, maxSize: 1 * MiB } });
    await arcaOk(['backup', '--repo', pristine, '--json', src], { env: pristineEnv() });
    objects = await listObjectNames(pristine);
    const repo = await openRepo(pristine);
    await repo.loadIndex();
    for (const [, loc] of repo.index.entries()) {
      const name = packName(loc.packId.toString('hex'));
      const list = blobsByPack.get(name) ?? [];
      list.push({ type: loc.type, offset: loc.offset, length: loc.length });
      blobsByPack.set(name, list);
    }
    baseline.snapshots = (await arcaOk(['snapshots', '--repo', pristine], { env: pristineEnv() })).stdout;
    baseline.ls = (await arcaOk(['ls', '--repo', pristine, 'latest'], { env: pristineEnv() })).stdout;
    const target = path.join(base, 'pristine-target');
    await arcaOk(['restore', 'latest', '--repo', pristine, '--target', target, '--verify'], { env: pristineEnv() });
    expect(await treeDifferences(src, path.join(target, src))).toEqual([]);
  });
  afterAll(async () => cleanup());

  it('starts from a repository with every kind of object and several packs', () => {
    const kinds = objects.map(kindOf);
    expect(kinds.filter((k) => k === 'config')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'keys')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'snapshots')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'index').length).toBeGreaterThanOrEqual(1);
    expect(kinds.filter((k) => k === 'data').length).toBeGreaterThanOrEqual(3);
    expect([...blobsByPack.keys()].sort()).toEqual(objects.filter((o) => kindOf(o) === 'data').sort());
    expect([...blobsByPack.values()].some((blobs) => blobs.some((b) => b.type === 'tree'))).toBe(true);
  });

  /** Runs the three reading commands on a damaged copy and checks each outcome; returns a report line per violation. */
  async function checkMutation(object: string, m: Mutation): Promise<string[]> {
    const dir = path.join(base, `m${++runs}`);
    const repo = path.join(dir, 'repo');
    await fsp.cp(pristine, repo, { recursive: true });
    await applyMutation(path.join(repo, object), m);
    const kind = kindOf(object);
    const blobs = kind === 'data' ? damagedBlobs(blobsByPack.get(object) ?? [], m) : [];
    const needs = (cmd: CommandName): boolean => {
      if (kind !== 'data') return ALWAYS_NEEDED_BY[kind].includes(cmd);
      if (cmd === 'snapshots') return false;
      if (cmd === 'ls') return blobs.some((b) => b.type === 'tree');
      return blobs.length > 0;
    };
    // "config" has no ID in its name; every other object is named by its ID.
    const objectId = object === 'config' ? 'config' : object.slice(object.lastIndexOf('/') + 1);
    const target = path.join(dir, 'target');
    const env = cliEnv(path.join(dir, 'cache'));
    const results: Array<[CommandName, RunResult]> = [
      ['snapshots', await runArca(['snapshots', '--repo', repo], { env })],
      ['ls', await runArca(['ls', '--repo', repo, 'latest'], { env })],
      ['restore', await runArca(['restore', 'latest', '--repo', repo, '--target', target, '--verify'], { env })],
    ];
    const problems: string[] = [];
    for (const [cmd, r] of results) {
      const what = `${object} ${describeMutation(m)}: ${cmd} exited ${String(r.code)}`;
      if (r.code === 0) {
        if (needs(cmd)) problems.push(`${what} although it needs the damaged bytes`);
        if (cmd === 'snapshots' && r.stdout !== baseline.snapshots) problems.push(`${what} with different output: ${r.stdout}`);
        if (cmd === 'ls' && r.stdout !== baseline.ls) problems.push(`${what} with different output: ${r.stdout}`);
        if (cmd === 'restore') for (const d of await treeDifferences(src, path.join(target, src))) problems.push(`${what} but restored wrong data: ${d}`);
      } else {
        if (r.code !== 1) problems.push(`${what}; a damaged object is a fatal error (1), not ${String(r.code)}: ${r.stderr}`);
        for (const p of stderrProblems(r.stderr)) problems.push(`${what}: ${p}`);
        if (!r.stderr.includes(objectId)) problems.push(`${what} without naming ${object}: ${r.stderr.trim()}`);
        // A failed restore may leave damaged files behind, but only ones it reported.
        if (cmd === 'restore') {
          for (const rel of await listFiles(src)) {
            if (r.stderr.includes(`${path.join(src, rel)}:`)) continue;
            const restored = await fsp.readFile(path.join(target, src, rel)).catch(() => undefined);
            if (restored !== undefined && !restored.equals(await fsp.readFile(path.join(src, rel)))) problems.push(`${what}: ${rel} is wrong but no error names it`);
          }
        }
      }
    }
    await fsp.rm(dir, { recursive: true, force: true });
    return problems;
  }

  async function checkKind(kind: Kind): Promise<void> {
    const names = objects.filter((o) => kindOf(o) === kind);
    const cases: Array<{ object: string; m: Mutation }> = [];
    for (const object of names) {
      const { size } = await fsp.stat(path.join(pristine, object));
      for (const m of mutationsFor(size)) cases.push({ object, m });
    }
    const problems = (await mapLimit(cases, 2, ({ object, m }) => checkMutation(object, m))).flat();
    expect(problems).toEqual([]);
  }

  it('config: every flip and cut fails every command, naming the config', async () => { await checkKind('config'); });
  it('key file: every flip and cut fails every command, naming the key file', async () => { await checkKind('keys'); });
  it('snapshot: every flip and cut fails every command, naming the snapshot', async () => { await checkKind('snapshots'); });
  it('index: every flip and cut fails ls and restore, naming the index', async () => { await checkKind('index'); });
  it('packs: restore fails when a needed blob is damaged, and otherwise restores the right bytes', async () => {
    await checkKind('data');
  });

  it('a missing pack: restore fails naming it, ls still works when it holds no tree', async () => {
    const dataPack = [...blobsByPack].find(([, blobs]) => blobs.every((b) => b.type === 'data'));
    expect(dataPack).toBeDefined();
    const [name] = dataPack ?? [''];
    const repo = path.join(base, 'missing-pack');
    await fsp.cp(pristine, repo, { recursive: true });
    await fsp.rm(path.join(repo, name));
    const target = path.join(base, 'missing-pack-target');
    const restore = await runArca(['restore', 'latest', '--repo', repo, '--target', target, '--verify'], { env: cliEnv(path.join(base, 'missing-pack-cache')) });
    expect(restore.code).toBe(1);
    expect(stderrProblems(restore.stderr)).toEqual([]);
    expect(restore.stderr).toContain(name.slice(name.lastIndexOf('/') + 1));
    const ls = await runArca(['ls', '--repo', repo, 'latest'], { env: cliEnv(path.join(base, 'missing-pack-cache')) });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toBe(baseline.ls);
  });

  it('a missing tree pack: ls and restore fail naming it', async () => {
    const treePack = [...blobsByPack].find(([, blobs]) => blobs.some((b) => b.type === 'tree'));
    const [name] = treePack ?? [''];
    const repo = path.join(base, 'missing-tree-pack');
    await fsp.cp(pristine, repo, { recursive: true });
    await fsp.rm(path.join(repo, name));
    for (const args of [['ls', 'latest'], ['restore', 'latest', '--target', path.join(base, 'missing-tree-target')]]) {
      const r = await runArca([...args, '--repo', repo], { env: cliEnv(path.join(base, 'missing-tree-pack-cache')) });
      expect(r.code, r.stderr).toBe(1);
      expect(stderrProblems(r.stderr)).toEqual([]);
      expect(r.stderr).toContain(name.slice(name.lastIndexOf('/') + 1));
    }
  });
});
