import { randomBytes } from 'node:crypto';
import { Blake3Hasher } from '@napi-rs/blake-hash';

/**
 * The repository's secret: 64 random bytes made once at `init`, wrapped by every password key.
 * All working keys are derived from it with BLAKE3's key-derivation mode, one context string each,
 * so no key is ever used for two jobs.
 */
export interface MasterKey {
  /** Root secret, stored only wrapped in key files. */
  readonly secret: Buffer;
  /** AES-256-GCM key for every sealed unit. */
  readonly encKey: Buffer;
  /** Keyed-BLAKE3 key for content IDs of blobs. */
  readonly idKey: Buffer;
}

/** The keys that sealing and opening blobs need; all a worker thread is given. */
export type BlobKeys = Pick<MasterKey, 'encKey' | 'idKey'>;

export const MASTER_SECRET_LENGTH = 64;

export function masterKeyFrom(secret: Buffer): MasterKey {
  if (secret.length !== MASTER_SECRET_LENGTH) throw new Error(`master secret must be ${MASTER_SECRET_LENGTH} bytes`);
  return {
    secret,
    encKey: Blake3Hasher.deriveKey('arca 2026 v1 encryption key', secret),
    idKey: Blake3Hasher.deriveKey('arca 2026 v1 content id key', secret),
  };
}

export function newMasterKey(): MasterKey {
  return masterKeyFrom(randomBytes(MASTER_SECRET_LENGTH));
}

/**
 * One keyed hasher per key buffer, reset between uses. A new one per call left a native object
 * per blob for the garbage collector to finalize, thousands a second in a backup of small files.
 */
const keyedHashers = new WeakMap<Buffer, Blake3Hasher>();

/** Keyed BLAKE3-256 of `data`. */
export function keyedHash(key: Buffer, data: Uint8Array): Buffer {
  let hasher = keyedHashers.get(key);
  if (hasher) hasher.reset();
  else keyedHashers.set(key, (hasher = Blake3Hasher.newKeyed(key)));
  return hasher.update(data).digestBuffer();
}

/** Content ID of a blob: keyed BLAKE3-256 of its plaintext, so IDs reveal nothing without the key. */
export function blobId(idKey: Buffer, plaintext: Uint8Array): Buffer {
  return keyedHash(idKey, plaintext);
}
