import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepositoryCache } from '../../repository/cache/repository-cache.ts';
import { CorruptObjectError } from '../../repository/errors.ts';
import { packName } from '../../repository/object-names.ts';
import { coalesceSpans, rangeOf } from '../../repository/pack/read-ranges.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { ShortReadError } from '../../repository/storage/storage.ts';
import { encodeTree } from '../../repository/tree/tree.ts';
import { tempDir } from '../support/cli.ts';
import { strictLogger } from '../support/memory-logger.ts';
import { CountingStorage } from './counting.ts';
import { backup, FAST_KDF, makeTree, SMALL_REPO } from './helpers.ts';

const PASSWORD = Buffer.from('batch-read-test');

describe('coalesceSpans', () => {
  const limits = { maxGap: 10, maxRange: 100 };

  it('joins neighbours in offset order, and splits at a wide gap or a long range', () => {
    const spans = [{ offset: 50, length: 10 }, { offset: 0, length: 10 }, { offset: 15, length: 10 }, { offset: 36, length: 4 }, { offset: 200, length: 5 }];
    expect(coalesceSpans(spans, limits).map((g) => g.map((s) => s.offset))).toEqual([[0, 15], [36, 50], [200]]);
    // 0..95 fits in 100 bytes; the next span would make it 110.
    const long = [0, 20, 40, 60, 80, 100].map((offset) => ({ offset, length: 15 }));
    expect(coalesceSpans(long, limits).map((g) => g.map((s) => s.offset))).toEqual([[0, 20, 40, 60, 80], [100]]);
    expect(rangeOf([{ offset: 20, length: 5 }, { offset: 30, length: 7 }])).toEqual({ offset: 20, length: 17 });
  });

  it('reads a span larger than the range limit alone', () => {
    expect(coalesceSpans([{ offset: 0, length: 5 }, { offset: 6, length: 500 }, { offset: 507, length: 5 }], limits).map((g) => g.length)).toEqual([1, 1, 1]);
  });
});

describe('Repository.loadTrees', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let counting: CountingStorage;
  let treeIds: Buffer[];

  /** Every tree of the snapshot, a level at a time, loaded one by one. */
  async function allTreeIds(repo: Repository, root: Buffer): Promise<Buffer[]> {
    const ids = [root];
    for (let i = 0; i < ids.length; i++) {
      for (const node of (await repo.loadTree(ids[i] as Buffer)).nodes) if (node.type === 'dir') ids.push(node.subtree);
    }
    return ids;
  }

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-batch-read-'));
    const src = path.join(base, 'src');
    await makeTree(src, 300, 1, (i) => 100 + i);
    counting = new CountingStorage(new LocalStorage(path.join(base, 'repo')));
    const repo = await Repository.init(counting, PASSWORD, SMALL_REPO, FAST_KDF);
    const { snapshot } = await backup(repo, [src]);
    await repo.loadIndex(); // The backup loaded its own (backupVolume works on a view of its own).
    treeIds = await allTreeIds(repo, Buffer.from(snapshot.tree, 'hex'));
  });
  afterAll(async () => cleanup());

  it('reads hundreds of trees with a few range reads, and gives what loadTree gives, in order', async () => {
    const repo = await Repository.open(counting, PASSWORD);
    await repo.loadIndex();
    const one = await Promise.all(treeIds.map((id) => repo.loadTree(id)));
    counting.reset();
    const shuffled = [...treeIds].reverse();
    const many = await repo.loadTrees(shuffled);
    expect(treeIds.length).toBeGreaterThan(300);
    expect(counting.byKind.get('data')?.gets).toBeLessThan(treeIds.length / 20);
    expect(many.map((t) => encodeTree(t).toString('hex'))).toEqual([...one].reverse().map((t) => encodeTree(t).toString('hex')));
  });

  it('asks the tree cache for all at once and fills it, so a second run reads no pack', async () => {
    const plain = await Repository.open(counting, PASSWORD);
    const cache = await RepositoryCache.open({ root: path.join(base, 'cache'), repoId: plain.config.id, logger: strictLogger() });
    if (!cache) throw new Error('no cache');
    try {
      const repo = plain.withStorage(counting, { blobCache: cache.trees });
      await repo.loadIndex();
      await repo.loadTrees(treeIds);
      counting.reset();
      const again = await repo.loadTrees(treeIds);
      expect(again).toHaveLength(treeIds.length);
      expect(counting.byKind.get('data')?.gets ?? 0).toBe(0);
    } finally {
      await cache.close();
    }
  });

  it('fails with the pack named when the pack is cut short inside a batched read, and reads the trees before the cut', async () => {
    const repo = await Repository.open(counting, PASSWORD);
    await repo.loadIndex();
    const locs = treeIds.map((id) => ({ id, loc: repo.locate(id) }));
    const victim = locs[Math.floor(locs.length / 2)];
    if (!victim?.loc) throw new Error('victim not indexed');
    const { loc } = victim;
    const inPack = locs.filter((l) => l.loc?.packId.equals(loc.packId));
    const before = inPack.filter((l) => (l.loc?.offset ?? Infinity) + (l.loc?.length ?? 0) <= loc.offset).map((l) => l.id);
    const file = path.join(base, 'repo', packName(loc.packId.toString('hex')));
    const whole = await fsp.readFile(file);
    try {
      await fsp.truncate(file, loc.offset + 10);
      const err: unknown = await repo.loadTrees(inPack.map((l) => l.id)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ShortReadError);
      expect((err as Error).message).toContain(packName(loc.packId.toString('hex')));
      expect(before.length).toBeGreaterThan(0);
      expect(await repo.loadTrees(before)).toHaveLength(before.length);
    } finally {
      await fsp.writeFile(file, whole);
    }
  });

  it('names the damaged tree when one byte of it is changed, though it was read in a range with others', async () => {
    const repo = await Repository.open(counting, PASSWORD);
    await repo.loadIndex();
    const victim = treeIds[Math.floor(treeIds.length / 2)] as Buffer;
    const loc = repo.locate(victim);
    if (!loc) throw new Error('victim not indexed');
    const file = path.join(base, 'repo', packName(loc.packId.toString('hex')));
    const bytes = await fsp.readFile(file);
    const at = loc.offset + Math.floor(loc.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    await fsp.writeFile(file, bytes);
    const err: unknown = await repo.loadTrees(treeIds).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptObjectError);
    expect((err as Error).message).toContain(victim.toString('hex'));
  });
});
