import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeStaleSpools } from '../../repository/pack/pack-spool.ts';
import type { Storage } from '../../repository/storage/storage.ts';
import { makeDirs } from '../../repository/util/make-dirs.ts';

/**
 * What a killed backup left (its workers' unfinished packs) is deleted by a later one once it
 * is this old: no live backup goes a day without writing to its pack.
 */
export const STALE_SPOOL_MS = 24 * 3600 * 1000;
const TEMP_PREFIX = 'arca-spool-';

/**
 * Runs `fn` with a directory where a backup's workers spool their packs: the storage's own
 * (a local repository, from which a pack is moved in place), or else a new temporary directory,
 * removed afterwards with anything a failure left in it. Spools that killed backups left, in
 * either place, go first (STALE_SPOOL_MS).
 */
export async function withSpoolDir<T>(storage: Storage, fn: (dir: string) => Promise<T>): Promise<T> {
  if (storage.spoolDir !== undefined) {
    await makeDirs(storage.spoolDir);
    await removeStaleSpools(storage.spoolDir, STALE_SPOOL_MS);
    return fn(storage.spoolDir);
  }
  await removeStaleTempDirs(os.tmpdir());
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), TEMP_PREFIX));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Temporary spool directories of killed backups (nothing in them written to for STALE_SPOOL_MS). */
async function removeStaleTempDirs(tmp: string): Promise<void> {
  const names = await fsp.readdir(tmp).catch(() => []);
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const dir = path.join(tmp, name);
    const st = await fsp.lstat(dir).catch(() => undefined);
    // A directory's mtime moves when a file is made in it; its live spool's own mtime is checked too.
    if (!st?.isDirectory() || Date.now() - st.mtimeMs < STALE_SPOOL_MS) continue;
    await removeStaleSpools(dir, STALE_SPOOL_MS);
    if ((await fsp.readdir(dir).catch(() => ['?'])).length === 0) await fsp.rmdir(dir).catch(() => undefined);
  }
}
