import { zstdDecompressSync } from 'node:zlib';
import { blobId, type BlobKeys } from '../crypto/master-key.ts';
import { open, seal } from '../crypto/seal.ts';
import { releaseBuffer } from '../util/release-buffer.ts';
import { ZstdCompressor, ZstdDataError, ZstdDecompressor } from './zstd-context.ts';

/**
 * A blob's plaintext inside its seal starts with one byte naming its compression, so every blob
 * describes itself and the index need not: 0 = stored as is, 1 = zstd.
 */
const RAW = 0;
const ZSTD = 1;
const KIND_BYTE: Readonly<Record<typeof RAW | typeof ZSTD, Buffer>> = { [RAW]: Buffer.of(RAW), [ZSTD]: Buffer.of(ZSTD) };

export type { BlobType } from '../index/types.ts';

export interface SealedBlob {
  readonly id: Buffer;
  readonly sealed: Buffer;
  readonly rawLength: number;
}

/** A blob recoded for another repository (BlobCodec.recode): `sealed` is undefined when it was not kept. */
export interface RecodedBlob {
  readonly id: Buffer;
  readonly sealed: Buffer | undefined;
  readonly rawLength: number;
}

export class BlobDecodeError extends Error {
  readonly code = 'ARCA_ERR_BLOB_DECODE';
}

/** Blobs at least this large are probed before they are compressed whole. */
const PROBE_FROM = 128 << 10;
const PROBE_SLICE = 16 << 10;
/**
 * Scratch buffers are kept per thread up to this size (chunks are at most 8 MiB by default); a
 * larger blob (a huge directory's tree) gets a buffer of its own.
 */
const SCRATCH_LIMIT = 16 << 20;

/**
 * Per-thread state for sealing and opening blobs: zstd contexts and scratch buffers, reused for
 * every blob, so a worker turning out a chunk every few milliseconds makes little garbage.
 */
class BlobCodec {
  private readonly compressors = new Map<number, ZstdCompressor>();
  private decompressor: ZstdDecompressor | undefined;
  private readonly sample = Buffer.allocUnsafeSlow(3 * PROBE_SLICE);
  private compressed: Buffer = Buffer.alloc(0);
  private plain: Buffer = Buffer.alloc(0);
  /** The decrypted buffer behind the last transient result, freed by the next transient call. */
  private lastTransient: Buffer | undefined;

  /** Compresses (when it shrinks), then seals `plaintext`, whose ID the caller computed already. */
  seal(keys: BlobKeys, id: Buffer, plaintext: Uint8Array, level: number): SealedBlob {
    const length = level > 0 && (plaintext.length < PROBE_FROM || !this.looksIncompressible(plaintext))
      ? this.compress(plaintext, level)
      : -1;
    const parts = length < 0 ? [KIND_BYTE[RAW], plaintext] : [KIND_BYTE[ZSTD], this.compressed.subarray(0, length)];
    return { id, sealed: seal(keys.encKey, 'blob', parts), rawLength: plaintext.length };
  }

  /**
   * Opens, decompresses and verifies one blob. With `transient`, the plaintext may live in this
   * thread's scratch buffer: it is valid only until the next call.
   */
  open(keys: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength: number | undefined, transient: boolean): Buffer {
    this.releaseTransient(transient);
    const { framed, plaintext } = this.unseal(keys, sealed, expectedId, rawLength, transient);
    if (plaintext.buffer !== framed.buffer) releaseBuffer(framed);
    else if (transient) this.lastTransient = framed;
    return plaintext;
  }

  /**
   * For a copy between repositories: opens and verifies a blob sealed under `from`, and when
   * `keep` takes its ID under `to`, seals it for `to` as it was compressed (zstd data is not
   * compressed again; a blob stored as is gets the chance a new one would).
   */
  recode(from: BlobKeys, to: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength: number | undefined, level: number, keep: (id: Buffer) => boolean): RecodedBlob {
    this.releaseTransient(true);
    const { framed, plaintext } = this.unseal(from, sealed, expectedId, rawLength, true);
    try {
      const id = blobId(to.idKey, plaintext);
      if (!keep(id)) return { id, sealed: undefined, rawLength: plaintext.length };
      if (framed[0] === ZSTD) return { id, sealed: seal(to.encKey, 'blob', framed), rawLength: plaintext.length };
      return this.seal(to, id, plaintext, level);
    } finally {
      releaseBuffer(framed);
    }
  }

  private releaseTransient(transient: boolean): void {
    if (transient && this.lastTransient) {
      releaseBuffer(this.lastTransient);
      this.lastTransient = undefined;
    }
  }

  /** Decrypts, decompresses and verifies: the decrypted frame, and the plaintext (in the frame when stored as is). */
  private unseal(keys: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength: number | undefined, transient: boolean): { framed: Buffer; plaintext: Buffer } {
    const framed = open(keys.encKey, 'blob', sealed);
    const kind = framed[0];
    let plaintext: Buffer;
    if (kind === RAW) plaintext = framed.subarray(1);
    else if (kind === ZSTD) plaintext = this.decompress(framed.subarray(1), rawLength, transient);
    else throw new BlobDecodeError(`unknown compression byte ${String(kind)}`);
    if (!blobId(keys.idKey, plaintext).equals(expectedId)) {
      throw new BlobDecodeError(`content does not match its ID ${expectedId.toString('hex')}`);
    }
    return { framed, plaintext };
  }

  /** Compresses into `this.compressed`; -1 when the result would not be smaller. */
  private compress(plaintext: Uint8Array, level: number): number {
    let compressor = this.compressors.get(level);
    if (!compressor) {
      compressor = new ZstdCompressor(level);
      this.compressors.set(level, compressor);
    }
    // No zstd frame of a few bytes' input is smaller than the input.
    if (plaintext.length < 16) return -1;
    this.compressed = scratch(this.compressed, plaintext.length);
    return compressor.compressInto(plaintext, this.compressed, plaintext.length - 1);
  }

  private decompress(frame: Buffer, rawLength: number | undefined, transient: boolean): Buffer {
    // rawLength comes from the index: a hint for the size, not trusted. A frame that does not
    // fit in one byte more than the hint is decoded the slow way, and the ID check judges it.
    if (rawLength !== undefined && rawLength < SCRATCH_LIMIT) {
      const out = transient ? (this.plain = scratch(this.plain, rawLength + 1)) : Buffer.allocUnsafeSlow(rawLength + 1);
      this.decompressor ??= new ZstdDecompressor();
      try {
        return out.subarray(0, this.decompressor.decompressInto(frame, out));
      } catch (err) {
        if (!(err instanceof ZstdDataError)) throw err;
      }
    }
    try {
      return zstdDecompressSync(frame);
    } catch (err) {
      throw new BlobDecodeError(`the blob's zstd data is damaged: ${(err as Error).message}`);
    }
  }

  /**
   * Whether `data` looks incompressible: three 16 KiB samples (start, middle, end) compressed at
   * level 1 save less than 3%. Compressing a random 1 MiB chunk at level 3 costs some 3 ms for
   * nothing; the probe costs about 50 µs.
   */
  private looksIncompressible(data: Uint8Array): boolean {
    const middle = Math.floor((data.length - PROBE_SLICE) / 2);
    this.sample.set(data.subarray(0, PROBE_SLICE), 0);
    this.sample.set(data.subarray(middle, middle + PROBE_SLICE), PROBE_SLICE);
    this.sample.set(data.subarray(data.length - PROBE_SLICE), 2 * PROBE_SLICE);
    const length = this.compress(this.sample, 1);
    return length < 0 || length > this.sample.length * 0.97;
  }
}

/** `current` if it holds `size` bytes, else a new buffer (kept when not above SCRATCH_LIMIT). */
function scratch(current: Buffer, size: number): Buffer {
  if (current.length >= size) return current;
  return Buffer.allocUnsafeSlow(size <= SCRATCH_LIMIT ? Math.max(size, Math.min(2 * current.length, SCRATCH_LIMIT)) : size);
}

const codec = new BlobCodec();

/** Compresses (when it shrinks), then seals `plaintext`, whose ID the caller computed already. */
export function sealBlob(keys: BlobKeys, id: Buffer, plaintext: Uint8Array, level: number): SealedBlob {
  return codec.seal(keys, id, plaintext, level);
}

export function encodeBlob(keys: BlobKeys, plaintext: Uint8Array, level: number): SealedBlob {
  return sealBlob(keys, blobId(keys.idKey, plaintext), plaintext, level);
}

/**
 * Opens, decompresses and verifies one blob. Throws SealOpenError when it does not authenticate
 * and BlobDecodeError when its content does not hash to `expectedId`. `rawLength` (from the index)
 * sizes the output buffer exactly; it is a hint, not trusted.
 */
export function decodeBlob(keys: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength?: number): Buffer {
  return codec.open(keys, sealed, expectedId, rawLength, false);
}

/**
 * decodeBlob for a caller that uses the plaintext at once (writes it to a file): the result may
 * be this thread's scratch buffer, valid only until the next decode in this thread.
 */
export function decodeBlobTransient(keys: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength?: number): Buffer {
  return codec.open(keys, sealed, expectedId, rawLength, true);
}

/**
 * For a copy: opens and verifies a blob of the repository with keys `from`, gives its ID under
 * `to`, and when `keep(id)` says so, seals it for `to` without compressing it again (see
 * BlobCodec.recode; `level` is for a blob the source stored uncompressed).
 */
export function recodeBlob(
  from: BlobKeys, to: BlobKeys, sealed: Uint8Array, expectedId: Buffer, rawLength: number | undefined, level: number, keep: (id: Buffer) => boolean,
): RecodedBlob {
  return codec.recode(from, to, sealed, expectedId, rawLength, level, keep);
}
