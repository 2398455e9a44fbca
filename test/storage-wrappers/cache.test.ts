import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBlob } from '../../repository/blob/blob-codec.ts';
import { CachingStorage } from '../../repository/cache/caching-storage.ts';
import { defaultCacheRoot, RepositoryCache } from '../../repository/cache/repository-cache.ts';
import { INDEX_PREFIX } from '../../repository/object-names.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { tempDir } from '../support/cli.ts';
import { MemoryLogger, strictLogger } from '../support/memory-logger.ts';
import { CountingStorage } from './counting.ts';
import { backup, FAST_KDF, makeTree, SMALL_REPO } from './helpers.ts';

const PASSWORD = Buffer.from('cache-test');

describe('the local cache', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let local: LocalStorage;
  let counting: CountingStorage;
  let repoId: string;
  let cacheRoot: string;
  let rootTree: Buffer;
  let src: string;

  /** Opens the repository through caching(counting(local)), the way the CLI stacks its wrappers. */
  async function openCached(): Promise<{ repo: Repository; cache: RepositoryCache; caching: CachingStorage }> {
    const plain = await Repository.open(counting, PASSWORD);
    const cache = await RepositoryCache.open({ root: cacheRoot, repoId: plain.config.id, logger: strictLogger() });
    if (!cache) throw new Error('no cache');
    const caching = new CachingStorage(counting, cache.objects);
    return { repo: plain.withStorage(caching, { blobCache: cache.trees }), cache, caching };
  }

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-cache-'));
    src = path.join(base, 'src');
    await makeTree(src, 6, 3, (i) => 1000 + i * 10);
    local = new LocalStorage(path.join(base, 'repo'));
    counting = new CountingStorage(local);
    const repo = await Repository.init(local, PASSWORD, SMALL_REPO, FAST_KDF);
    repoId = repo.config.id;
    rootTree = Buffer.from((await backup(repo, [src])).snapshot.tree, 'hex');
    cacheRoot = path.join(base, 'cache');
  });
  afterAll(async () => cleanup());

  it('lives in $XDG_CACHE_HOME/arca, else ~/.cache/arca', () => {
    expect(defaultCacheRoot({ XDG_CACHE_HOME: '/x/cache' }, '/home/u')).toBe('/x/cache/arca');
    expect(defaultCacheRoot({}, '/home/u')).toBe('/home/u/.cache/arca');
    expect(defaultCacheRoot({ XDG_CACHE_HOME: 'relative' }, '/home/u')).toBe('/home/u/.cache/arca');
  });

  it('answers index files, snapshots and trees from the cache on the second run', async () => {
    const first = await openCached();
    counting.reset();
    await first.repo.loadIndex();
    const [snap] = await first.repo.listSnapshots();
    await first.repo.loadTree(rootTree);
    const coldIndexGets = counting.byKind.get('index')?.gets ?? 0;
    expect(coldIndexGets).toBeGreaterThan(0);
    expect(counting.byKind.get('snapshots')?.gets).toBe(1);
    expect(counting.byKind.get('data')?.gets).toBe(1);
    await first.cache.close();

    const second = await openCached();
    counting.reset();
    await second.repo.loadIndex();
    expect((await second.repo.listSnapshots())[0]?.id).toBe(snap?.id);
    expect((await second.repo.loadTree(rootTree)).nodes.length).toBeGreaterThan(0);
    expect(counting.byKind.get('index')?.gets ?? 0).toBe(0);
    expect(counting.byKind.get('snapshots')?.gets ?? 0).toBe(0);
    expect(counting.byKind.get('data')?.gets ?? 0).toBe(0);
    expect(second.caching.stats.hits).toBe(coldIndexGets + 1);
    // Listings still go to storage: they are how deletions are noticed.
    expect(counting.byKind.get('index')?.lists).toBe(1);
    expect(await fsp.readFile(path.join(cacheRoot, 'CACHEDIR.TAG'), 'utf8')).toMatch(/^Signature: 8a477f597d28d172789f06886806bc55/);
    await second.cache.close();
  });

  it('caches what it writes: an index file or snapshot put through it is read back without a GET', async () => {
    const { repo, cache } = await openCached();
    const id = await repo.writeIndexFile([]);
    counting.reset();
    await repo.readIndexFile(`${INDEX_PREFIX}${id}`);
    expect(counting.total.gets).toBe(0);
    await repo.storage.delete(`${INDEX_PREFIX}${id}`);
    expect(await cache.objects.get(`${INDEX_PREFIX}${id}`)).toBeUndefined();
    await cache.close();
  });

  it('never trusts a bad entry: it is dropped and the object read from storage again', async () => {
    const { repo, cache, caching } = await openCached();
    const indexNames = await cache.objects.names(INDEX_PREFIX);
    const victim = indexNames[0] ?? '';
    const good = await local.get(victim);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0x40;
    await cache.objects.put(victim, bad);
    counting.reset();
    expect(await repo.storage.get(victim)).toEqual(good);
    expect(caching.stats.dropped).toBe(1);
    expect(counting.byKind.get('index')?.gets).toBe(1);
    expect(await cache.objects.get(victim)).toEqual(good);

    // A tree entry that does not decode, and one that decodes to another blob: both dropped.
    await repo.loadIndex();
    const [rightSealed] = await cache.trees.getMany([rootTree]);
    expect(rightSealed).toBeDefined();
    for (const wrong of [Buffer.from('not a sealed blob'), encodeBlob(repo.keys, Buffer.from('{"nodes":[]}'), 3).sealed]) {
      await cache.trees.putMany([{ id: rootTree, sealed: wrong }]);
      counting.reset();
      const tree = await repo.loadTree(rootTree);
      expect(tree.nodes.map((n) => n.name.toString())).toEqual([src.split('/')[1]]);
      expect(counting.byKind.get('data')?.gets).toBe(1);
      expect((await cache.trees.getMany([rootTree]))[0]).toEqual(rightSealed);
    }
    await cache.close();
  });

  it('drops index files and snapshots that storage no longer lists (prune, forget), and trees no longer indexed', async () => {
    const { repo, cache } = await openCached();
    await repo.loadIndex();
    await repo.listSnapshots();
    const extra = await repo.writeIndexFile([]);
    expect(await cache.objects.names(INDEX_PREFIX)).toContain(`${INDEX_PREFIX}${extra}`);
    await local.delete(`${INDEX_PREFIX}${extra}`); // Another host's prune.
    // A listing cut short says nothing about what is gone.
    for await (const info of repo.storage.list(INDEX_PREFIX)) if (info.name !== '') break;
    expect(await cache.objects.names(INDEX_PREFIX)).toContain(`${INDEX_PREFIX}${extra}`);
    const fresh = repo.withStorage(repo.storage, { blobCache: cache.trees });
    await fresh.loadIndex();
    const cachedIndexes = await cache.objects.names(INDEX_PREFIX);
    expect(cachedIndexes).not.toContain(`${INDEX_PREFIX}${extra}`);
    expect(cachedIndexes.sort()).toEqual((await collect(local.list(INDEX_PREFIX))).sort());

    await cache.trees.putMany([{ id: Buffer.alloc(32, 7), sealed: Buffer.from('an unindexed tree') }]);
    expect(await cache.dropTreesNotIn((id) => fresh.locate(id) !== undefined)).toBe(1);
    expect((await cache.trees.getMany([rootTree]))[0]).toBeDefined();
    await cache.close();
  });

  it('goes on without the cache when another process holds it, or it cannot be created', async () => {
    const log = new MemoryLogger();
    const holder = await RepositoryCache.open({ root: cacheRoot, repoId });
    expect(holder).toBeDefined();
    expect(await RepositoryCache.open({ root: cacheRoot, repoId, logger: log })).toBeUndefined();
    await holder?.close();
    const blocked = path.join(base, 'a-file');
    await fsp.writeFile(blocked, '');
    expect(await RepositoryCache.open({ root: blocked, repoId, logger: log })).toBeUndefined();
    expect(await RepositoryCache.open({ root: cacheRoot, repoId: '../../etc', logger: log })).toBeUndefined();
    // A cache that fails while in use is switched off after one warning; reads become misses.
    const failing = await RepositoryCache.open({ root: cacheRoot, repoId, logger: log });
    await failing?.close();
    expect(await failing?.objects.get('index/x')).toBeUndefined();
    await failing?.trees.putMany([{ id: Buffer.alloc(32), sealed: Buffer.from('x') }]);
    expect((await failing?.trees.getMany([Buffer.alloc(32)]))?.[0]).toBeUndefined();
    expect(log.warnings()).toEqual([
      expect.stringMatching(/^the cache .* is in use by another arca process; going on without it$/),
      expect.stringMatching(/^cannot use the cache .*a-file.*; going on without it$/),
      expect.stringMatching(/is not 64 hex digits/),
      expect.stringMatching(/^the cache .* failed \(.*not open.*\); going on without it$/),
    ]);
  });

  it('makes a damaged cache database anew', async () => {
    const root = path.join(base, 'damaged-cache');
    const first = await RepositoryCache.open({ root, repoId });
    await first?.objects.put('index/x', Buffer.from('x'));
    await first?.close();
    const dir = path.join(root, repoId);
    for (const file of await fsp.readdir(dir)) if (file.startsWith('MANIFEST') || file === 'CURRENT') await fsp.writeFile(path.join(dir, file), 'garbage');
    const log = new MemoryLogger();
    const again = await RepositoryCache.open({ root, repoId, logger: log });
    expect(log.warnings()).toEqual([]);
    expect(again).toBeDefined();
    expect(await again?.objects.get('index/x')).toBeUndefined();
    await again?.close();
  });
});

async function collect(list: AsyncIterable<{ name: string }>): Promise<string[]> {
  const names: string[] = [];
  for await (const info of list) names.push(info.name);
  return names;
}
