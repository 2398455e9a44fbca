import { constants as zc, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { blobId, type BlobKeys } from '../crypto/master-key.ts';
import { open, seal } from '../crypto/seal.ts';

/**
 * A blob's plaintext inside its seal starts with one byte naming its compression, so every blob
 * describes itself and the index need not: 0 = stored as is, 1 = zstd.
 */
const RAW = 0;
const ZSTD = 1;

export type { BlobType } from '../index/types.ts';

export interface SealedBlob {
  readonly id: Buffer;
  readonly sealed: Buffer;
  readonly rawLength: number;
}

export class BlobDecodeError extends Error {
  readonly code = 'ARCA_ERR_BLOB_DECODE';
}

/** Blobs at least this large are probed before they are compressed whole. */
const PROBE_FROM = 128 << 10;
const PROBE_SLICE = 16 << 10;

/**
 * Whether `data` looks incompressible: three 16 KiB samples (start, middle, end) compressed at
 * level 1 save less than 3%. Compressing a random 1 MiB chunk at level 3 costs some 3 ms for
 * nothing; the probe costs about 50 µs.
 */
function looksIncompressible(data: Uint8Array): boolean {
  const middle = Math.floor((data.length - PROBE_SLICE) / 2);
  const sample = Buffer.concat([
    data.subarray(0, PROBE_SLICE), data.subarray(middle, middle + PROBE_SLICE), data.subarray(data.length - PROBE_SLICE),
  ]);
  const probe = zstdCompressSync(sample, { chunkSize: sample.length, params: { [zc.ZSTD_c_compressionLevel]: 1 } });
  return probe.length > sample.length * 0.97;
}

/** Compresses (when it shrinks), then seals `plaintext`, whose ID the caller computed already. */
export function sealBlob(keys: BlobKeys, id: Buffer, plaintext: Uint8Array, level: number): SealedBlob {
  const tryCompression = level > 0 && (plaintext.length < PROBE_FROM || !looksIncompressible(plaintext));
  // An output buffer the size of the input: zlib's default chunks would allocate (and leave to the
  // garbage collector) far more than a small blob needs.
  const compressed = tryCompression
    ? zstdCompressSync(plaintext, { chunkSize: Math.max(64, plaintext.length), params: { [zc.ZSTD_c_compressionLevel]: level } })
    : undefined;
  const useZstd = compressed !== undefined && compressed.length < plaintext.length;
  const body = useZstd ? compressed : plaintext;
  const kind = Buffer.of(useZstd ? ZSTD : RAW);
  return { id, sealed: seal(keys.encKey, 'blob', [kind, body]), rawLength: plaintext.length };
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
  const framed = open(keys.encKey, 'blob', sealed);
  const kind = framed[0];
  let plaintext: Buffer;
  if (kind === RAW) plaintext = framed.subarray(1);
  else if (kind === ZSTD) plaintext = zstdDecompressSync(framed.subarray(1), rawLength === undefined ? {} : { chunkSize: Math.max(64, rawLength) });
  else throw new BlobDecodeError(`unknown compression byte ${String(kind)}`);
  if (!blobId(keys.idKey, plaintext).equals(expectedId)) {
    throw new BlobDecodeError(`content does not match its ID ${expectedId.toString('hex')}`);
  }
  return plaintext;
}
