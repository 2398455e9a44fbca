import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, promises as fsp, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import type { BlobType } from '../blob/blob-codec.ts';
import { encodePackHeader, type PackBlob } from './pack-header.ts';

/** A pack written to a local file, ready to be stored (Storage.putFile) and then indexed. */
export interface SpooledPack {
  readonly file: string;
  /** BLAKE3-256 of the pack's bytes; also its object name. */
  readonly id: Buffer;
  readonly size: number;
  readonly blobs: readonly PackBlob[];
}

/** Names end like LocalStorage's temporary files, which listings skip. */
const SPOOL_SUFFIX = '.arca-tmp';
const SPOOL_NAME = /^pack-[0-9a-f]{16}\.arca-tmp$/;

/**
 * Deletes pack files in `dir` that a crashed writer left: those not written to for `olderThanMs`.
 * A live writer writes its pack at every blob it adds, so only a writer that found nothing new
 * for that long could lose its file, and it would then fail when storing it, not store it short.
 * Returns how many it deleted.
 */
export async function removeStaleSpools(dir: string, olderThanMs: number, now = Date.now()): Promise<number> {
  let removed = 0;
  const names = await fsp.readdir(dir).catch(() => []);
  for (const name of names) {
    if (!SPOOL_NAME.test(name)) continue;
    const file = path.join(dir, name);
    const st = await fsp.lstat(file).catch(() => undefined);
    if (!st?.isFile() || now - st.mtimeMs < olderThanMs) continue;
    await fsp.rm(file, { force: true });
    removed++;
  }
  return removed;
}
/** Small blobs are gathered into writes of about this size. */
const WRITE_BUFFER = 1 << 20;

/**
 * Writes packs to files one at a time, blob by blob, so that a pack being filled is on disk
 * (in the page cache) rather than in memory. Synchronous: it runs in a pool worker, beside the
 * sealing that feeds it. The caller stores each finished file and deletes nothing itself; a
 * file left by a crash ends in SPOOL_SUFFIX, which repository listings skip.
 */
export class PackSpool {
  private readonly dir: string;
  private readonly encKey: Buffer;
  private readonly packSize: number;
  private readonly buffer = Buffer.allocUnsafeSlow(WRITE_BUFFER);
  private buffered = 0;
  private current: { file: string; fd: number; hasher: Blake3Hasher; blobs: PackBlob[]; size: number } | undefined;

  constructor(dir: string, encKey: Buffer, packSize: number) {
    this.dir = dir;
    this.encKey = encKey;
    this.packSize = packSize;
  }

  /** Appends a sealed blob; returns the finished pack when this one filled it. */
  add(type: BlobType, id: Buffer, sealed: Uint8Array, rawLength: number): SpooledPack | undefined {
    const pack = this.current ?? this.open();
    try {
      this.write(pack.fd, sealed);
    } catch (err) {
      this.abandon(); // A pack with a blob missing in the middle is of no use.
      throw err;
    }
    pack.hasher.update(sealed);
    pack.blobs.push({ id, type, offset: pack.size, length: sealed.length, rawLength });
    pack.size += sealed.length;
    return pack.size >= this.packSize ? this.finish() : undefined;
  }

  /** Ends the pack being filled (header and trailer written, file closed); undefined if it is empty. */
  finish(): SpooledPack | undefined {
    const pack = this.current;
    if (!pack) return undefined;
    this.current = undefined;
    const header = encodePackHeader(this.encKey, pack.blobs);
    try {
      pack.hasher.update(header);
      this.write(pack.fd, header);
      this.flush(pack.fd);
    } catch (err) {
      this.buffered = 0;
      rmSync(pack.file, { force: true });
      throw err;
    } finally {
      closeSync(pack.fd);
    }
    return { file: pack.file, id: pack.hasher.digestBuffer(), size: pack.size + header.length, blobs: pack.blobs };
  }

  /** Deletes the pack being filled, after a failure. */
  abandon(): void {
    const pack = this.current;
    this.current = undefined;
    this.buffered = 0;
    if (!pack) return;
    closeSync(pack.fd);
    rmSync(pack.file, { force: true });
  }

  private open(): NonNullable<PackSpool['current']> {
    const file = path.join(this.dir, `pack-${randomBytes(8).toString('hex')}${SPOOL_SUFFIX}`);
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    this.current = { file, fd, hasher: new Blake3Hasher(), blobs: [], size: 0 };
    return this.current;
  }

  private write(fd: number, bytes: Uint8Array): void {
    if (bytes.length >= this.buffer.length / 2) {
      this.flush(fd); // What is buffered comes first.
      writeAll(fd, bytes);
      return;
    }
    if (this.buffered + bytes.length > this.buffer.length) this.flush(fd);
    this.buffer.set(bytes, this.buffered);
    this.buffered += bytes.length;
  }

  private flush(fd: number): void {
    if (this.buffered === 0) return;
    writeAll(fd, this.buffer.subarray(0, this.buffered));
    this.buffered = 0;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
}
