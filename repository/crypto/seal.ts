import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { keyedHash } from './master-key.ts';
import { releaseBuffer } from '../util/release-buffer.ts';

/**
 * Authenticated encryption of one stored unit (a blob, a pack header, an index, a snapshot).
 *
 * Layout: nonce (24 random bytes) | AES-256-GCM ciphertext | tag (16 bytes).
 * A per-message AES key is derived as keyed-BLAKE3(encKey, nonce[0..12]) and nonce[12..24] is the
 * GCM IV. With 2^40 messages the chance that two share a derived key is about 2^80 / 2^97 = 2^-17,
 * and even then both would also need the same 96-bit IV (2^-96 more) to reuse a (key, IV) pair,
 * so the scheme stays far inside the 2^-32 bound that random 96-bit GCM nonces exceed at 2^32
 * messages. See docs/format.md, "Encryption".
 */
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;
export const KEY_LENGTH = 32;

/** What a sealed unit is; bound as associated data so one kind can never be passed off as another. */
export type SealPurpose = 'blob' | 'pack-header' | 'index' | 'snapshot' | 'config' | 'master-key' | 'lease' | 'prune-plan';

const AAD: Readonly<Record<SealPurpose, Buffer>> = {
  'blob': Buffer.from('arca-v1:blob'),
  'pack-header': Buffer.from('arca-v1:pack-header'),
  'index': Buffer.from('arca-v1:index'),
  'snapshot': Buffer.from('arca-v1:snapshot'),
  'config': Buffer.from('arca-v1:config'),
  'master-key': Buffer.from('arca-v1:master-key'),
  'lease': Buffer.from('arca-v1:lease'),
  'prune-plan': Buffer.from('arca-v1:prune-plan'),
};

/** Raised when a sealed unit does not authenticate: wrong key, truncation or tampering. */
export class SealOpenError extends Error {
  readonly code = 'ARCA_ERR_SEAL_OPEN';
}

/**
 * The per-message key, as a KeyObject: the cipher takes one some 5× faster than raw key bytes,
 * which it would first check, at some cost, for being a KeyObject.
 */
function messageKey(encKey: Buffer, nonce: Buffer): KeyObject {
  return createSecretKey(keyedHash(encKey, nonce.subarray(0, 12)));
}

/**
 * The cipher allocates a new buffer for each call's output. Fed this much at a time, those
 * buffers are small and malloc recycles them at once; fed whole blobs (up to 8 MiB), they made
 * each worker's heap grow by tens of MiB.
 */
const PIECE = 64 << 10;

/** Runs `cipher` over `input` into `out` from `at`, a piece at a time; returns the bytes written. */
function cipherInto(cipher: { update(data: Uint8Array): Buffer }, input: Uint8Array, out: Buffer, at: number): number {
  let written = 0;
  for (let from = 0; from < input.length; from += PIECE) {
    const piece = cipher.update(input.subarray(from, from + PIECE));
    written += piece.copy(out, at + written);
    releaseBuffer(piece);
  }
  return written;
}

export function seal(encKey: Buffer, purpose: SealPurpose, plaintext: Uint8Array | readonly Uint8Array[]): Buffer {
  // The plaintext may come in parts (a blob's compression byte and its body), which saves
  // assembling it in one more buffer first.
  const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext;
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  // Never from Buffer's shared pool: sealed units are moved between threads whole.
  const out = Buffer.allocUnsafeSlow(length + SEAL_OVERHEAD);
  const nonce = randomBytes(NONCE_LENGTH);
  nonce.copy(out, 0);
  const cipher = createCipheriv('aes-256-gcm', messageKey(encKey, nonce), nonce.subarray(12));
  cipher.setAAD(AAD[purpose]);
  let written = NONCE_LENGTH;
  for (const part of parts) written += cipherInto(cipher, part, out, written);
  written += cipher.final().copy(out, written);
  cipher.getAuthTag().copy(out, written);
  return out;
}

export function open(encKey: Buffer, purpose: SealPurpose, sealed: Uint8Array): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw new SealOpenError(`sealed data of ${sealed.length} bytes is shorter than the ${SEAL_OVERHEAD}-byte envelope`);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  const nonce = buf.subarray(0, NONCE_LENGTH);
  const tag = buf.subarray(buf.length - TAG_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', messageKey(encKey, nonce), nonce.subarray(12));
  decipher.setAAD(AAD[purpose]);
  decipher.setAuthTag(tag);
  const body = buf.subarray(NONCE_LENGTH, buf.length - TAG_LENGTH);
  const out = Buffer.allocUnsafeSlow(body.length);
  cipherInto(decipher, body, out, 0);
  let tail: Buffer;
  try {
    tail = decipher.final();
  } catch (err) {
    throw new SealOpenError('authentication failed (wrong key, or the data was modified)', { cause: err });
  }
  // GCM gives all of its output from update(); final() only checks the tag.
  if (tail.length !== 0) throw new SealOpenError(`the cipher gave ${tail.length} bytes more than the sealed data holds`);
  return out;
}
