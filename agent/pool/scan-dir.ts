import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { isExcluded } from '../backup/exclude.ts';
import { packStat, STAT_SLOTS } from '../backup/entry-stat.ts';
import {
  failureOf, type ChunkFileResult, type ScanDirResult, type ScanDirTask, type ScannedDir, type ScannedOutcome, type StoredBlobMessage,
} from './messages.ts';

/** Sealed blobs of small files travel to the main thread in batches of about this size. */
const STORE_BATCH = 1 << 20;

/**
 * What the worker lends a scan: its file chunker and its line to the main thread. The main
 * thread lists directories itself without these (listDirHere), and then reads no file.
 */
export interface ScanDeps {
  /** Chunks and seals a whole file without asking (ChunkFileTask.sealUnasked). */
  readonly readFile: (path: Buffer) => Promise<{ result: ChunkFileResult; transfer: ArrayBuffer[] }>;
  /** Hands sealed blobs to the main thread and waits until it has taken them. */
  readonly store: (blobs: StoredBlobMessage[], transfer: ArrayBuffer[]) => Promise<void>;
}

/** Blobs read so far and not yet sent, with the buffers that move with them. */
class BlobBatch {
  blobs: StoredBlobMessage[] = [];
  transfer: ArrayBuffer[] = [];
  private bytes = 0;

  add(result: ChunkFileResult, transfer: readonly ArrayBuffer[]): void {
    this.blobs.push(...result.blobs);
    this.transfer.push(...transfer.filter((buffer) => buffer !== result.content.buffer));
    for (const blob of result.blobs) this.bytes += blob.sealed.byteLength;
  }

  async sendIfFull(deps: ScanDeps): Promise<void> {
    if (this.bytes < STORE_BATCH) return;
    await deps.store(this.blobs, this.transfer);
    this.blobs = [];
    this.transfer = [];
    this.bytes = 0;
  }
}

/**
 * Runs a ScanDirTask in a worker, with synchronous calls: a worker has nothing else to do
 * meanwhile that would not also wait for the disk, and one call costs a few microseconds where
 * a promise round trip through the thread pool costs tens.
 */
export async function scanDir(request: ScanDirTask, deps: ScanDeps): Promise<{ result: ScanDirResult; transfer: ArrayBuffer[] }> {
  const batch = new BlobBatch();
  const budget = { entries: request.descendUpTo };
  const listing = await listDir(Buffer.from(request.path), request.dev, request, budget, batch, deps);
  return { result: { kind: 'scan-dir', ...listing, blobs: batch.blobs }, transfer: batch.transfer };
}

/**
 * Lists one directory in the calling thread (lstat and symlink targets, no file read, no
 * descent). For a directory the parent snapshot has, where most files are usually unchanged,
 * this is cheaper than a message to a worker, and a backup in which nothing changed never
 * starts the workers at all.
 */
export async function listDirHere(dir: Buffer, excludes: readonly string[]): Promise<ScannedDir> {
  const request: ScanDirTask = { kind: 'scan-dir', path: dir, dev: 0n, excludes, readUpTo: -1, descendUpTo: 0 };
  return listDir(dir, 0n, request, { entries: 0 }, new BlobBatch(), undefined);
}

async function listDir(
  dir: Buffer, dev: bigint, request: ScanDirTask, budget: { entries: number }, batch: BlobBatch, deps: ScanDeps | undefined,
): Promise<ScannedDir> {
  const prefix = dir.at(-1) === 0x2f ? dir : Buffer.concat([dir, Buffer.from('/')]);
  const names = readdirSync(dir, { encoding: 'buffer' }).filter((name) => !isExcluded(Buffer.concat([prefix, name]), request.excludes));
  budget.entries -= names.length;
  const stats = new BigInt64Array(names.length * STAT_SLOTS);
  const outcomes: ScannedOutcome[] = [];
  for (const [i, name] of names.entries()) {
    const full = Buffer.concat([prefix, name]);
    let st: BigIntStats;
    try {
      st = lstatSync(full, { bigint: true });
    } catch (err) {
      outcomes.push({ kind: 'stat-failed', failure: failureOf(err) });
      continue;
    }
    packStat(st, stats, i);
    outcomes.push(await scanEntry(full, st, dev, request, budget, batch, deps));
    if (deps) await batch.sendIfFull(deps);
  }
  // Memory of its own: a message would clone all of Buffer's shared pool behind a small concat.
  const packedNames = Buffer.allocUnsafeSlow(names.reduce((sum, name) => sum + name.length, 0));
  const nameEnds = new Uint32Array(names.length);
  let end = 0;
  names.forEach((name, i) => {
    end += name.copy(packedNames, end);
    nameEnds[i] = end;
  });
  return { names: packedNames, nameEnds, stats, outcomes };
}

async function scanEntry(
  full: Buffer, st: BigIntStats, dev: bigint, request: ScanDirTask, budget: { entries: number }, batch: BlobBatch, deps: ScanDeps | undefined,
): Promise<ScannedOutcome> {
  if (st.isSymbolicLink()) {
    try {
      return { kind: 'symlink', target: readlinkSync(full, { encoding: 'buffer' }) };
    } catch (err) {
      return { kind: 'read-failed', failure: failureOf(err) };
    }
  }
  if (st.isDirectory()) {
    // Another file system (a mount point) and unreadable directories are left to the main thread.
    if (budget.entries <= 0 || st.dev !== dev) return null;
    try {
      return { kind: 'dir', listing: await listDir(full, dev, request, budget, batch, deps) };
    } catch {
      return null;
    }
  }
  if (!deps || !st.isFile() || st.size > BigInt(request.readUpTo) || st.nlink > 1n) return null;
  try {
    const { result, transfer } = await deps.readFile(full);
    batch.add(result, transfer);
    return { kind: 'read', content: result.content, size: result.size };
  } catch (err) {
    return { kind: 'read-failed', failure: failureOf(err) };
  }
}
