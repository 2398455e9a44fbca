import { closeSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { isExcluded } from '../fs/exclude.ts';
import { atPath, openDirAt, openDirPath, type Identity } from '../fs/handles.ts';

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
 * Directories held open at once on the way down: deeper ones are not counted (the totals are
 * an estimate for progress), so that the scan never takes the descriptors the backup needs.
 */
const MAX_DEPTH = 64;

/**
 * Counts the regular files and bytes a backup of `paths` will process, by the archiver's rules
 * (lstat, excludes, one filesystem), so that progress can show a total and an ETA. It runs
 * beside the backup and stops when `signal` aborts; unreadable entries are simply not counted.
 * Like the backup, it walks by directory handles (handles.ts), so no rename or symlink swap
 * makes it list anything outside the tree; a directory's entries are streamed, not held.
 */
export async function scanTotals(paths: readonly string[], options: ScanOptions): Promise<ScanTotals | undefined> {
  let files = 0;
  let bytes = 0;
  /** Counts what the directory open as `fd` (at `full`) holds, and below it. */
  const visitDir = async (fd: number, full: Buffer, rootDev: bigint, depth: number): Promise<void> => {
    const subdirs: Array<{ name: Buffer; id: Identity }> = [];
    const prefix = Buffer.concat([full, Buffer.from(full.at(-1) === 0x2f ? '' : '/')]);
    try {
      // Names as bytes (any bytes are valid names): opendir takes 'buffer', which its types omit.
      const dir = await fsp.opendir(atPath(fd).toString('latin1'), { encoding: 'buffer' as BufferEncoding, bufferSize: 256 });
      for await (const entry of dir) {
        if (options.signal.aborted) break;
        const name = entry.name as unknown as Buffer;
        if (isExcluded(Buffer.concat([prefix, name]), options.excludes)) continue;
        const st = await fsp.lstat(atPath(fd, name), { bigint: true }).catch(() => undefined);
        if (st?.isFile()) {
          files++;
          bytes += Number(st.size);
        } else if (st?.isDirectory() && (!options.oneFileSystem || st.dev === rootDev) && depth < MAX_DEPTH) subdirs.push({ name, id: { dev: st.dev, ino: st.ino } });
      }
    } catch {
      return;
    }
    for (const { name, id } of subdirs) {
      if (options.signal.aborted) return;
      let child: number;
      try {
        child = openDirAt(fd, name, id);
      } catch {
        continue;
      }
      try {
        await visitDir(child, Buffer.concat([prefix, name]), rootDev, depth + 1);
      } finally {
        closeSync(child);
      }
    }
  };
  for (const p of paths) {
    const full = Buffer.from(path.resolve(p));
    const st = await fsp.lstat(full, { bigint: true }).catch(() => undefined);
    if (st?.isFile()) {
      files++;
      bytes += Number(st.size);
    }
    if (!st?.isDirectory()) continue;
    let fd: number;
    try {
      fd = openDirPath(full, st);
    } catch {
      continue;
    }
    try {
      await visitDir(fd, full, st.dev, 1);
    } finally {
      closeSync(fd);
    }
  }
  return options.signal.aborted ? undefined : { files, bytes };
}
