import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { BackupResult } from '../../engine/backup/archiver.ts';
import { backupVolume, restoreSnapshot, type RestoreSummary } from '../../engine/index.ts';
import { WorkerPool, workerSetupFor } from '../../engine/pool/worker-pool.ts';
import type { Repository } from '../../repository/repository.ts';
import type { StoredSnapshot } from '../../repository/snapshot/snapshot.ts';

export const KiB = 1024;

/** A fast key derivation for test repositories (one scrypt lane of N = 1024). */
export const FAST_KDF = { fixedN: 1024 } as const;

/** Small chunks and packs, so a small tree still makes many requests of every kind. */
export const SMALL_REPO = { packSize: 128 * KiB, chunker: { minSize: 16 * KiB, avgSize: 32 * KiB, maxSize: 64 * KiB } } as const;

/** Deterministic pseudo-random bytes (so runs are comparable) that do not compress. */
export function pseudoRandom(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at, 0, Math.min(block.length, size - at));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** `dirs` directories of `filesPerDir` files of `fileSize` bytes (plus a few odd sizes) under `root`. */
export async function makeTree(root: string, dirs: number, filesPerDir: number, fileSize: (i: number) => number): Promise<void> {
  let n = 0;
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `d${Math.floor(d / 10)}`, `dir${d}`);
    await fsp.mkdir(dir, { recursive: true });
    for (let f = 0; f < filesPerDir; f++, n++) await fsp.writeFile(path.join(dir, `f${f}.bin`), pseudoRandom(`${root}:${n}`, fileSize(n)));
  }
}

/** Runs `fn` with a small worker pool (spooling packs in `spoolDir` if given), always closing it. */
export async function withSmallPool<T>(repo: Repository, fn: (pool: WorkerPool) => Promise<T>, spoolDir?: string): Promise<T> {
  const pool = new WorkerPool(workerSetupFor(repo.keys, repo.config, { spoolDir }), 2);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

/** A backup through the door (backupVolume), as every caller makes it; against `parent` if given, else none. */
export async function backup(repo: Repository, paths: string[], parent?: StoredSnapshot): Promise<BackupResult> {
  const outcome = await backupVolume(repo, paths, { host: 'test-host', parent: parent ? { kind: 'snapshot', ref: parent.id } : { kind: 'none' }, workers: 2 });
  if (outcome.status !== 'completed') throw new Error(`the backup ended ${outcome.status}`);
  return outcome;
}

export async function restore(repo: Repository, snapshotId: string, target: string): Promise<RestoreSummary> {
  const outcome = await restoreSnapshot(repo, snapshotId, target, { verify: true, workers: 2 });
  if (outcome.status !== 'completed') throw new Error(`the restore ended ${outcome.status}`);
  return outcome.summary;
}
