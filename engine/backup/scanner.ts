import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { isExcluded } from '../fs/exclude.ts';

export interface ScanTotals {
  readonly files: number;
  readonly bytes: number;
}

export interface ScanOptions {
  readonly excludes: readonly string[];
  readonly oneFileSystem: boolean;
  readonly signal: AbortSignal;
}

/**
 * Counts the regular files and bytes a backup of `paths` will process, by the archiver's rules
 * (lstat, excludes, one filesystem), so that progress can show a total and an ETA. It runs
 * beside the backup and stops when `signal` aborts; unreadable entries are simply not counted.
 */
export async function scanTotals(paths: readonly string[], options: ScanOptions): Promise<ScanTotals | undefined> {
  let files = 0;
  let bytes = 0;
  const visit = async (full: Buffer, rootDev: bigint | undefined): Promise<void> => {
    if (options.signal.aborted) return;
    const st = await fsp.lstat(full, { bigint: true }).catch(() => undefined);
    if (!st) return;
    if (st.isFile()) {
      files++;
      bytes += Number(st.size);
      return;
    }
    if (!st.isDirectory() || (rootDev !== undefined && options.oneFileSystem && st.dev !== rootDev)) return;
    const names = await fsp.readdir(full, { encoding: 'buffer' }).catch(() => []);
    for (const name of names) {
      const child = Buffer.concat([full, Buffer.from(full.at(-1) === 0x2f ? '' : '/'), name]);
      if (!isExcluded(child, options.excludes)) await visit(child, rootDev ?? st.dev);
    }
  };
  for (const p of paths) {
    const st = await fsp.lstat(p, { bigint: true }).catch(() => undefined);
    await visit(Buffer.from(path.resolve(p)), st?.dev);
  }
  return options.signal.aborted ? undefined : { files, bytes };
}
