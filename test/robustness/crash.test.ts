import { existsSync, promises as fsp, readdirSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_PREFIX, INDEX_PREFIX, KEYS_PREFIX, SNAPSHOTS_PREFIX, packName } from '../../repository/object-names.ts';
import { arcaOk, startArca, summaryOf, tempDir } from '../support/cli.ts';
import { cliEnv, initRepo, listFiles, openRepo, treeDifferences, writeRandomFile } from './helpers.ts';

/**
 * `arca backup` killed with SIGKILL at chosen moments: timed, and at repository events seen
 * through inotify (a pack half-written, the first pack in place, an index being written, two of
 * the run's indexes in place, the snapshot being written). After each kill the repository must be valid:
 * earlier snapshots restore byte for byte, every index entry points into a pack that exists, the
 * leftover temporary files are never taken for objects, and the next backup completes, reusing
 * the packs that were indexed before the kill.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const PACK_SIZE = 2 * MiB;
const HEX_ID = /^[0-9a-f]{64}$/;
const TEMP = /\.arca-tmp$/;

interface RepoEvent {
  /** "data", "index" or "snapshots". */
  readonly dir: string;
  readonly name: string;
  readonly repo: string;
  /** Index files in place before the killed run started. */
  readonly indexesBefore: number;
}

type Trigger =
  | { readonly label: string; readonly afterMs: number }
  | { readonly label: string; readonly when: (e: RepoEvent) => boolean };

interface KilledRun {
  readonly killed: boolean;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How many index files are in place (complete, not temporary). */
function indexCount(repo: string): number {
  return readdirSync(path.join(repo, 'index')).filter((n) => HEX_ID.test(n)).length;
}

const RANDOM_MS = Math.floor(Math.random() * 500);

/** The trials, each on a fresh repository. `mayFinish` when the backup can win the race to the kill. */
const TRIALS: ReadonlyArray<{ trigger: Trigger; mayFinish: boolean; late?: boolean }> = [
  { trigger: { label: 'after 100 ms', afterMs: 100 }, mayFinish: true },
  { trigger: { label: `after a random ${RANDOM_MS} ms`, afterMs: RANDOM_MS }, mayFinish: true },
  { trigger: { label: 'while the first pack is being written', when: (e) => e.dir === 'data' && TEMP.test(e.name) }, mayFinish: false },
  {
    trigger: { label: 'once the first pack is in place', when: (e) => e.dir === 'data' && HEX_ID.test(e.name) && existsSync(path.join(e.repo, packName(e.name))) },
    mayFinish: false,
  },
  { trigger: { label: 'while the first index is being written', when: (e) => e.dir === 'index' && TEMP.test(e.name) }, mayFinish: false },
  {
    trigger: { label: 'once two of its indexes are in place', when: (e) => e.dir === 'index' && HEX_ID.test(e.name) && indexCount(e.repo) >= e.indexesBefore + 2 },
    mayFinish: false,
    late: true,
  },
  { trigger: { label: 'while the snapshot is being written', when: (e) => e.dir === 'snapshots' && TEMP.test(e.name) }, mayFinish: true },
];

describe('a backup killed at any moment leaves a valid repository', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let src: string;
  /** Backed up before each killed run: one directory of the tree, so its blobs are shared. */
  let firstPart: string;
  let sourceBytes = 0;
  let fullDataAdded = 0;
  let trialNo = 0;

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-crash-'));
    src = path.join(base, 'src');
    firstPart = path.join(src, 'd0');
    // ~110 MiB of incompressible data: 200 files of 16..200 KiB in 5 directories, and 4 big files.
    for (let d = 0; d < 5; d++) {
      for (let i = 0; i < 40; i++) await writeRandomFile(path.join(src, `d${d}`, `f${i}`), 16 * KiB + Math.floor(Math.random() * 184 * KiB));
    }
    for (let i = 0; i < 4; i++) await writeRandomFile(path.join(src, `big${i}.bin`), 22 * MiB + i * 12345);
    for (const rel of await listFiles(src)) sourceBytes += (await fsp.stat(path.join(src, rel))).size;
  });
  afterAll(async () => cleanup());

  /** A fresh repository with small packs and the first snapshot (of `firstPart`) in it. */
  async function prepareRepo(name: string): Promise<{ repo: string; firstSnapshot: string }> {
    const repo = path.join(base, name);
    await initRepo(repo, { packSize: PACK_SIZE });
    const first = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', firstPart], { env: cliEnv(path.join(base, 'cache')) })).stdout);
    return { repo, firstSnapshot: String(first.snapshot_id) };
  }

  async function restoresExactly(repo: string, snapshotId: string, sourceDir: string): Promise<void> {
    const target = path.join(base, `restore-${++trialNo}`);
    await arcaOk(['restore', snapshotId, '--repo', repo, '--target', target, '--verify'], { env: cliEnv(path.join(base, 'cache')) });
    expect(await treeDifferences(sourceDir, path.join(target, sourceDir)), `snapshot ${snapshotId.slice(0, 8)}`).toEqual([]);
    await fsp.rm(target, { recursive: true, force: true });
  }

  /** Starts `arca backup` of the whole tree and SIGKILLs it when the trigger fires. */
  async function backupKilled(repo: string, trigger: Trigger): Promise<KilledRun> {
    // Watch every directory objects are written to; data/xx are made up front so that no write
    // lands in a directory that is not watched yet.
    const dirs = ['index', 'snapshots', ...Array.from({ length: 256 }, (_, i) => path.join('data', i.toString(16).padStart(2, '0')))];
    for (const d of dirs) await fsp.mkdir(path.join(repo, d), { recursive: true });
    const indexesBefore = indexCount(repo);
    const child = startArca(['backup', '--repo', repo, '--json', src], { env: cliEnv(path.join(base, 'cache')) });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const watchers: FSWatcher[] = [];
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => { child.kill('SIGKILL'); };
    if ('afterMs' in trigger) {
      timer = setTimeout(kill, trigger.afterMs);
    } else {
      for (const d of dirs) {
        const kind = d.split(path.sep)[0] ?? d;
        watchers.push(watch(path.join(repo, d), (_event, filename) => {
          if (filename !== null && trigger.when({ dir: kind, name: filename, repo, indexesBefore })) kill();
        }));
      }
    }
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.on('close', (c, s) => { resolve([c, s]); });
    });
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
    return { killed: signal === 'SIGKILL', code, stdout, stderr };
  }

  /** Bytes of the packs that the repository's indexes point at. */
  async function indexedPacks(repo: string): Promise<Map<string, number>> {
    const r = await openRepo(repo);
    await r.loadIndex();
    const ends = new Map<string, number>();
    for (const [, loc] of r.index.entries()) {
      const name = packName(loc.packId.toString('hex'));
      ends.set(name, Math.max(ends.get(name) ?? 0, loc.offset + loc.length));
    }
    const sizes = new Map<string, number>();
    for (const [name, end] of ends) {
      // An index is written only after its packs are durable: each must exist and hold its blobs.
      const st = await fsp.stat(path.join(repo, name)).catch(() => undefined);
      expect(st, `${name} is in an index but does not exist`).toBeDefined();
      expect(st?.size ?? 0, `${name} is shorter than its index says`).toBeGreaterThan(end);
      sizes.set(name, st?.size ?? 0);
    }
    return sizes;
  }

  /** Storage names that are not objects: temporary files of interrupted writes, planted or left by the kill. */
  async function plantTempFiles(repo: string): Promise<string[]> {
    const planted = [
      `${DATA_PREFIX}ab/${'ab'.repeat(32)}.0123456789ab.arca-tmp`,
      `${INDEX_PREFIX}${'cd'.repeat(32)}.0123456789ab.arca-tmp`,
      `${SNAPSHOTS_PREFIX}${'ef'.repeat(32)}.0123456789ab.arca-tmp`,
      `${KEYS_PREFIX}${'01'.repeat(32)}.0123456789ab.arca-tmp`,
    ];
    for (const name of planted) {
      await fsp.mkdir(path.dirname(path.join(repo, name)), { recursive: true });
      await fsp.writeFile(path.join(repo, name), 'half-written garbage');
    }
    return planted;
  }

  async function snapshotIds(repo: string): Promise<string[]> {
    const out = (await arcaOk(['snapshots', '--repo', repo, '--json'], { env: cliEnv(path.join(base, 'cache')) })).stdout;
    return (JSON.parse(out) as Array<{ id: string }>).map((s) => s.id).sort();
  }

  it('a full backup, uninterrupted, for reference', async () => {
    const { repo } = await prepareRepo('reference');
    const full = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src], { env: cliEnv(path.join(base, 'cache')) })).stdout);
    fullDataAdded = Number(full.data_added);
    // Incompressible data: all of it is stored, but for the first part, which is in the repository already.
    expect(fullDataAdded).toBeGreaterThan(sourceBytes * 0.8);
  });

  for (const { trigger, mayFinish, late } of TRIALS) {
    it(`killed ${trigger.label}`, async () => {
      expect(fullDataAdded).toBeGreaterThan(0);
      const { repo, firstSnapshot } = await prepareRepo(`repo-${trigger.label.replace(/\W+/g, '-')}`);
      const indexedBefore = await indexedPacks(repo);
      const run = await backupKilled(repo, trigger);
      if (!mayFinish) expect(run.killed, `the backup finished before the kill: ${run.stdout.slice(-300)}`).toBe(true);
      if (!run.killed) expect(run.code, run.stderr).toBe(0);

      // Temporary files, left by the kill or planted here, must never be taken for objects.
      const planted = await plantTempFiles(repo);

      // Every snapshot that exists (the first, and the killed one only if it got that far) restores exactly.
      const ids = await snapshotIds(repo);
      expect(ids).toContain(firstSnapshot);
      // The killed run's snapshot exists only if the kill came after it was in place.
      expect(ids.length).toBeLessThanOrEqual(2);
      if (!run.killed) expect(ids).toHaveLength(2);
      for (const id of ids) await restoresExactly(repo, id, id === firstSnapshot ? firstPart : src);

      // The index is consistent with the packs, and says what the killed run left reusable.
      const indexedAfterKill = await indexedPacks(repo);
      let reusable = 0;
      for (const [name, size] of indexedAfterKill) if (!indexedBefore.has(name)) reusable += size;

      // The next backup completes and gives a snapshot that restores exactly.
      const next = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src], { env: cliEnv(path.join(base, 'cache')) })).stdout);
      const nextId = String(next.snapshot_id);
      expect(await snapshotIds(repo)).toEqual([...new Set([...ids, nextId])].sort());
      if (run.killed) {
        // What the killed run indexed is reused, and only that: the rest is uploaded again.
        expect(Number(next.data_added)).toBeLessThanOrEqual(fullDataAdded - reusable + 1 * MiB);
        expect(Number(next.data_added)).toBeGreaterThanOrEqual(fullDataAdded - reusable - 1 * MiB);
      }
      if (late) {
        // Two index files of 8 packs each, every pack at least PACK_SIZE.
        expect(reusable).toBeGreaterThanOrEqual(16 * PACK_SIZE);
        expect(Number(next.data_added)).toBeLessThan(fullDataAdded);
      }
      // A snapshot built on packs of a killed run is the one to read back in full.
      if (reusable > 0) await restoresExactly(repo, nextId, src);
      await restoresExactly(repo, firstSnapshot, firstPart);

      // The temporary files were skipped, not read as objects, nor deleted.
      for (const name of planted) expect(existsSync(path.join(repo, name))).toBe(true);
      const r = await openRepo(repo);
      for (const prefix of [DATA_PREFIX, INDEX_PREFIX, SNAPSHOTS_PREFIX, KEYS_PREFIX]) {
        for await (const obj of r.storage.list(prefix)) expect(obj.name).not.toMatch(TEMP);
      }
      await fsp.rm(repo, { recursive: true, force: true });
    });
  }
});
