import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Archiver, type BackupResult } from '../../engine/backup/archiver.ts';
import { withSpoolDir } from '../../engine/backup/spool-dir.ts';
import { WorkerPool, workerSetupFor } from '../../engine/pool/worker-pool.ts';
import { Restorer, type RestoreSummary } from '../../engine/restore/restorer.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import type { Repository } from '../../repository/repository.ts';
import type { StoredSnapshot } from '../../repository/snapshot/snapshot.ts';

export const KiB = 1024;

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

/**
 * A backup through the library, assembled as `arca backup` does it: the workers spool packs in a
 * temporary directory when the storage (wrapped) has no directory of its own, and the packs go
 * through the wrappers' `put`.
 */
export async function backup(repo: Repository, paths: string[], parent?: StoredSnapshot): Promise<BackupResult> {
  return withSpoolDir(repo.storage, (spoolDir) => withSmallPool(repo, (pool) => new Archiver(repo, pool, new BlobWriter(repo)).run({ paths, parent, host: 'test-host' }), spoolDir));
}

export async function restore(repo: Repository, snapshotId: string, target: string): Promise<RestoreSummary> {
  const { snapshot } = await repo.resolveSnapshot(snapshotId);
  return withSmallPool(repo, (pool) => new Restorer(repo, pool).run(snapshot, { target, verify: true }));
}
