import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checker } from '../../repository/check/checker.ts';
import { Lease, LeaseLapsedError, type LeaseTiming } from '../../repository/maintenance/leases.ts';
import { prune, type PruneOptions } from '../../repository/maintenance/prune.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { snapshotName } from '../../repository/object-names.ts';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';

const PASSWORD = 'test-password';
const TIMING: LeaseTiming = { ttlMs: 60_000, heartbeatMs: 10_000 };
const OPTIONS: PruneOptions = { maxUnusedPercent: 5, dryRun: false, lease: { timing: TIMING } };

async function open(repoDir: string): Promise<Repository> {
  const repo = await Repository.open(new LocalStorage(repoDir), Buffer.from(PASSWORD));
  await repo.loadIndex();
  return repo;
}

async function packCount(repoDir: string): Promise<number> {
  const dirs = await readdir(path.join(repoDir, 'data')).catch(() => []);
  let n = 0;
  for (const d of dirs) n += (await readdir(path.join(repoDir, 'data', d))).length;
  return n;
}

async function backup(repoDir: string, src: string): Promise<string> {
  return String(summaryOf((await arcaOk(['backup', '--repo', repoDir, '--json', src])).stdout).snapshot_id);
}

async function restoredEquals(repoDir: string, snapshot: string, src: string, files: Record<string, Buffer>, target: string): Promise<void> {
  await arcaOk(['restore', snapshot, '--repo', repoDir, '--target', target, '--verify']);
  for (const [name, content] of Object.entries(files)) {
    expect((await readFile(path.join(target, src, name))).equals(content)).toBe(true);
  }
}

describe('prune', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repoDir: string;
  let src: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    repoDir = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    await mkdir(src);
    await arcaOk(['init', '--repo', repoDir]);
  });
  afterEach(async () => cleanup());

  it('deletes what no snapshot uses, repacks partly used packs, and keeps every kept snapshot whole', async () => {
    const a = randomBytes(20 << 20);
    const b = randomBytes(12 << 20);
    await writeFile(path.join(src, 'a'), a);
    await writeFile(path.join(src, 'b'), b);
    const first = await backup(repoDir, src);
    await rm(path.join(src, 'a'));
    const c = randomBytes(3 << 20);
    await writeFile(path.join(src, 'c'), c);
    const second = await backup(repoDir, src);
    await rm(path.join(repoDir, snapshotName(first)));

    const repo = await open(repoDir);
    const dry = await prune(repo, { ...OPTIONS, dryRun: true });
    expect(dry.packsMarked).toBeGreaterThan(0);
    expect(dry.packsDeleted).toBe(0);

    const before = await packCount(repoDir);
    const report = await prune(await open(repoDir), OPTIONS);
    expect(report.packsDeleted).toBeGreaterThan(0);
    expect(report.bytesReclaimed).toBeGreaterThanOrEqual(20 << 20);
    expect(report.plansPending).toBe(0);
    expect(await packCount(repoDir)).toBeLessThanOrEqual(before);

    const check = await new Checker(await open(repoDir)).run({ readData: { kind: 'all' } });
    expect(check.problems).toEqual([]);
    expect(check.notices).toEqual([]);
    await restoredEquals(repoDir, second, src, { b, c }, path.join(dir, 'restore'));
  });

  it('waits for a writer that was running, then keeps the blobs its new snapshot uses', async () => {
    const data = randomBytes(4 << 20);
    await writeFile(path.join(src, 'f'), data);
    const old = await backup(repoDir, src);

    // A backup that started before the prune: it holds a lease and has loaded the index.
    const writerRepo = await open(repoDir);
    const lease = await Lease.acquire(writerRepo, 'backup', { timing: TIMING });
    const oldSnapshot = await writerRepo.loadSnapshot(old);

    // Meanwhile the only snapshot using the data is forgotten, and prune runs.
    await rm(path.join(repoDir, snapshotName(old)));
    const marked = await prune(await open(repoDir), OPTIONS);
    expect(marked.packsMarked).toBeGreaterThan(0);
    expect(marked.packsDeleted).toBe(0);
    expect(marked.plansPending).toBe(1);

    // The writer finishes: its snapshot references the data it deduplicated against.
    const reused = await writerRepo.saveSnapshot({ ...oldSnapshot, time: new Date().toISOString() });
    // Readers still find the blobs while the plan is pending.
    await restoredEquals(repoDir, reused, src, { f: data }, path.join(dir, 'restore-pending'));
    await lease.release();

    const swept = await prune(await open(repoDir), OPTIONS);
    expect(swept.packsResurrected).toBeGreaterThan(0);
    expect(swept.plansPending).toBe(0);
    const check = await new Checker(await open(repoDir)).run({ readData: { kind: 'all' } });
    expect(check.problems).toEqual([]);
    await restoredEquals(repoDir, reused, src, { f: data }, path.join(dir, 'restore-after'));
  });

  it('does not wait for a lease whose writer stopped renewing it', async () => {
    await writeFile(path.join(src, 'f'), randomBytes(2 << 20));
    const old = await backup(repoDir, src);
    const crashedRepo = await open(repoDir);
    const shortTiming: LeaseTiming = { ttlMs: 50, heartbeatMs: 1_000_000 };
    await Lease.acquire(crashedRepo, 'backup', { timing: shortTiming }); // Never released or renewed: a crash.
    await rm(path.join(repoDir, snapshotName(old)));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const report = await prune(await open(repoDir), { ...OPTIONS, lease: { timing: shortTiming } });
    expect(report.packsDeleted).toBeGreaterThan(0);
    expect(report.plansPending).toBe(0);
    expect(await packCount(repoDir)).toBe(0);
  });

  it('a writer whose lease a prune revoked writes no snapshot, and releases safely', async () => {
    await writeFile(path.join(src, 'f'), 'data\n');
    const id = await backup(repoDir, src);
    const repo = await open(repoDir);
    const snapshot = await repo.loadSnapshot(id);
    const timing: LeaseTiming = { ttlMs: 50, heartbeatMs: 1_000_000 };
    const lease = await Lease.acquire(repo, 'backup', { timing });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await prune(await open(repoDir), { ...OPTIONS, lease: { timing } });
    const before = await readdir(path.join(repoDir, 'snapshots'));
    await expect(repo.saveSnapshot({ ...snapshot, tags: ['late'] })).rejects.toBeInstanceOf(LeaseLapsedError);
    expect(() => { lease.assertFresh(); }).toThrow(LeaseLapsedError);
    expect(await readdir(path.join(repoDir, 'snapshots'))).toEqual(before);
    // Release is idempotent, never throws, and leaves the revocation for the holder's clones to see.
    await Promise.all([lease.release(), lease.release()]);
    expect((await readdir(path.join(repoDir, 'leases'))).filter((n) => !n.endsWith('.revoked'))).toEqual([]);
  });

  it('settles: a prune with nothing to reclaim repacks nothing, even with small packs', async () => {
    for (let i = 0; i < 5; i++) await writeFile(path.join(src, `tiny${i}`), `tiny file ${i}\n`);
    await backup(repoDir, src);
    for (let run = 0; run < 2; run++) {
      const report = await prune(await open(repoDir), OPTIONS);
      expect(report).toMatchObject({ packsMarked: 0, packsRepacked: 0, packsDeleted: 0 });
    }
  });

  it('removes the leases that crashed writers left behind', async () => {
    await writeFile(path.join(src, 'f'), 'data\n');
    await backup(repoDir, src);
    const shortTiming: LeaseTiming = { ttlMs: 50, heartbeatMs: 1_000_000 };
    await Lease.acquire(await open(repoDir), 'backup', { timing: shortTiming }); // Never released: a crash.
    expect(await readdir(path.join(repoDir, 'leases'))).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await prune(await open(repoDir), { ...OPTIONS, lease: { timing: shortTiming } });
    // Only the revocation stays, for a holder that might still wake up.
    expect((await readdir(path.join(repoDir, 'leases'))).map((n) => path.extname(n))).toEqual(['.revoked']);
  });

  it('compacts many index files into one and reports it on the CLI', async () => {
    for (let i = 0; i < 5; i++) {
      await writeFile(path.join(src, `f${i}`), randomBytes(100_000));
      await backup(repoDir, src);
    }
    expect((await readdir(path.join(repoDir, 'index'))).length).toBe(5);
    const out = await arcaOk(['prune', '--repo', repoDir, '--json']);
    const report = JSON.parse(out.stdout.trim()) as Record<string, unknown>;
    expect(report).toMatchObject({ dry_run: false, index_files_before: 5, index_files_after: 1, packs_deleted: 0 });
    expect((await readdir(path.join(repoDir, 'index'))).length).toBe(1);
    await arcaOk(['check', '--repo', repoDir, '--read-data']);
  });
});
