import { Blake3Hasher } from '@napi-rs/blake-hash';
import { ChunkerKeyError } from './errors.ts';

/** Length in bytes of a gear-table key. */
export const GEAR_KEY_LENGTH = 32;

/** Domain separation for the derivation; changing it changes every chunk boundary. */
const GEAR_CONTEXT = 'arca chunker gear table v1';

/**
 * Derives the 256-entry gear table of the FastCDC rolling hash from a secret 32-byte key.
 *
 * Entry block `i` (8 entries, 32 bytes) is `BLAKE3-keyed(key, context || u32le(i))` read as
 * little-endian 32-bit words, so the table is a PRF of the key: without the key, chunk
 * boundaries (and hence chunk lengths) reveal nothing useful, and different keys give
 * unrelated boundaries.
 *
 * @throws ChunkerKeyError (code `ARCA_ERR_CHUNKER_KEY`) unless `key` is a 32-byte Uint8Array.
 */
export function gearTable(key: Uint8Array): Uint32Array {
  if (!(key instanceof Uint8Array)) {
    throw new ChunkerKeyError(`the gear key must be a Uint8Array of ${GEAR_KEY_LENGTH} bytes.`);
  }
  if (key.length !== GEAR_KEY_LENGTH) {
    throw new ChunkerKeyError(`the gear key must be exactly ${GEAR_KEY_LENGTH} bytes, got ${key.length}; derive it from the repository master key.`);
  }
  const keyBuf = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const context = Buffer.from(GEAR_CONTEXT, 'utf8');
  const table = new Uint32Array(256);
  const counter = Buffer.alloc(4);
  for (let block = 0; block < 32; block++) {
    counter.writeUInt32LE(block, 0);
    const digest = Blake3Hasher.newKeyed(keyBuf).update(context).update(counter).digestBuffer();
    for (let j = 0; j < 8; j++) table[block * 8 + j] = digest.readUInt32LE(j * 4);
  }
  return table;
}
