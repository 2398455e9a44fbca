/** Blob and pack IDs as eight big-endian uint32 words, the form the compact tables store. */
export const ID_WORDS = 8;

/**
 * A 32-bit hash of the ID at `words[base..base+8)`, mixing all eight words so that IDs that are
 * not uniform hashes (a hostile tree's, or test data) still spread over a table.
 */
export function hashIdWords(words: Uint32Array, base: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < ID_WORDS; k++) {
    h = Math.imul(h ^ (words[base + k] ?? 0), 0x9e3779b1);
    h = (h << 15) | (h >>> 17);
  }
  return fmix32(h);
}

/** MurmurHash3's finalizer: spreads every input bit over the 32-bit result. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
