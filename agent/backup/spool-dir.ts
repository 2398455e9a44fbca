import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Storage } from '../../repository/storage/storage.ts';

/**
 * Runs `fn` with a directory where a backup's workers spool their packs: the storage's own
 * (a local repository, from which a pack is moved in place), or else a new temporary directory,
 * removed afterwards with anything a failure left in it.
 */
export async function withSpoolDir<T>(storage: Storage, fn: (dir: string) => Promise<T>): Promise<T> {
  if (storage.spoolDir !== undefined) {
    await fsp.mkdir(storage.spoolDir, { recursive: true });
    return fn(storage.spoolDir);
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'arca-spool-'));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
