/**
 * How many storage requests (and bytes) a backup makes with and without the local cache.
 *
 *   node bench/cache-requests.ts [DIRS] [FILES_PER_DIR]      (default 200 dirs x 10 files)
 *
 * Builds a tree of small files, then in two fresh repositories (one opened with the cache, one
 * without) runs three backups of it the way `arca backup` does (open, load the index, find the
 * parent snapshot, back up): the first stores everything, the second and third find nothing
 * changed. The storage stack is the CLI's, retrying(caching(backend)), with a counting wrapper
 * as the backend's outermost layer, so only requests that reach the storage are counted.
 *
 * The snapshot's root tree mirrors the source's absolute path, so the directories above it are
 * backed up too (their metadata): run with TMPDIR pointing at a quiet directory, or a busy /tmp
 * changes between backups and shows up as a few new trees.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupVolume } from '../engine/index.ts';
import { CachingStorage } from '../repository/cache/caching-storage.ts';
import { RepositoryCache } from '../repository/cache/repository-cache.ts';
import { Repository } from '../repository/repository.ts';
import { LocalStorage } from '../repository/storage/local.ts';
import { RetryingStorage } from '../repository/storage/retrying.ts';
import { CountingStorage, type RequestCounts } from '../test/storage-wrappers/counting.ts';
import { pseudoRandom } from '../test/storage-wrappers/helpers.ts';
import { strictLogger } from '../test/support/memory-logger.ts';

const DIRS = Number(process.argv[2] ?? 200);
const FILES_PER_DIR = Number(process.argv[3] ?? 10);
const PASSWORD = Buffer.from('bench');

interface Row {
  readonly label: string;
  readonly byKind: ReadonlyMap<string, RequestCounts>;
  readonly total: RequestCounts;
  readonly seconds: number;
  readonly cacheHits: number;
}

async function makeTree(root: string): Promise<void> {
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(root, `group${Math.floor(d / 20)}`, `dir${d}`);
    await fsp.mkdir(dir, { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const n = d * FILES_PER_DIR + f;
      await fsp.writeFile(path.join(dir, `file${f}.dat`), pseudoRandom(`bench:${n}`, 512 + ((n * 7919) % 8192)));
    }
  }
}

/** One `arca backup` run: open, then back up through the door (lease, index, parent, pool). */
async function backupOnce(repoDir: string, src: string, cacheRoot: string | undefined, label: string): Promise<Row> {
  const counting = new CountingStorage(new LocalStorage(repoDir));
  const started = performance.now();
  let repo = await Repository.open(new RetryingStorage(counting), PASSWORD);
  let cache: RepositoryCache | undefined;
  let caching: CachingStorage | undefined;
  if (cacheRoot !== undefined) {
    cache = await RepositoryCache.open({ root: cacheRoot, repoId: repo.config.id, logger: strictLogger() });
    if (!cache) throw new Error('no cache');
    caching = new CachingStorage(counting, cache.objects);
    repo = repo.withStorage(new RetryingStorage(caching), { blobCache: cache.trees });
  }
  try {
    // The door loads the index (dropping cached trees no longer indexed) and picks the parent.
    const outcome = await backupVolume(repo, src, { host: 'bench' });
    if (outcome.status !== 'completed') throw new Error(`the backup ended ${outcome.status}`);
  } finally {
    await cache?.close();
  }
  return { label, byKind: new Map(counting.byKind), total: counting.total, seconds: (performance.now() - started) / 1000, cacheHits: caching?.stats.hits ?? 0 };
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function report(rows: readonly Row[]): string {
  const kinds = ['config', 'keys', 'index', 'snapshots', 'data'];
  const head = `| run | GETs | bytes read | ${kinds.map((k) => `${k} GETs (bytes)`).join(' | ')} | PUTs | lists | cache hits | time |`;
  const rule = `|${head.split('|').slice(1, -1).map(() => '---').join('|')}|`;
  const lines = rows.map((r) => {
    const perKind = kinds.map((k) => {
      const c = r.byKind.get(k);
      return c ? `${c.gets} (${kib(c.getBytes)})` : '0';
    });
    return `| ${r.label} | ${r.total.gets} | ${kib(r.total.getBytes)} | ${perKind.join(' | ')} | ${r.total.puts} | ${r.total.lists} | ${r.cacheHits} | ${r.seconds.toFixed(2)} s |`;
  });
  return [head, rule, ...lines].join('\n');
}

async function main(): Promise<void> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'arca-bench-cache-'));
  try {
    const src = path.join(base, 'src');
    await makeTree(src);
    // Everything is created before the first backup: a directory that changes between backups
    // (here, the parent of the source) would make its tree, and the trees above it, new.
    const cacheRoot = path.join(base, 'cache');
    await fsp.mkdir(cacheRoot);
    for (const name of ['repo-plain', 'repo-cached']) await Repository.init(new LocalStorage(path.join(base, name)), PASSWORD, {}, { fixedN: 1024 });
    const rows: Row[] = [];
    for (const cached of [false, true]) {
      const repoDir = path.join(base, cached ? 'repo-cached' : 'repo-plain');
      const mode = cached ? 'cache' : 'no cache';
      const root = cached ? cacheRoot : undefined;
      rows.push(await backupOnce(repoDir, src, root, `${mode}: 1st backup`));
      rows.push(await backupOnce(repoDir, src, root, `${mode}: 2nd (no change)`));
      rows.push(await backupOnce(repoDir, src, root, `${mode}: 3rd (no change)`));
    }
    process.stdout.write(`${DIRS * FILES_PER_DIR} files in ${DIRS} directories (plus ${Math.ceil(DIRS / 20)} group directories)\n\n${report(rows)}\n`);
  } finally {
    await fsp.rm(base, { recursive: true, force: true });
  }
}

await main();
