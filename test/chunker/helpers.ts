import { createCipheriv, createHash } from 'node:crypto';
import type { ChunkerParams } from '../../chunker/index.ts';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Deterministic pseudo-random bytes: the AES-256-CTR keystream under a key made from `seed`. */
export function randomData(size: number, seed = 1): Buffer {
  const key = createHash('sha256').update(`arca chunker test ${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const out = Buffer.allocUnsafeSlow(size);
  const zeros = Buffer.alloc(Math.min(size, 16 * MiB));
  for (let off = 0; off < size; off += zeros.length) {
    const n = Math.min(zeros.length, size - off);
    cipher.update(zeros.subarray(0, n)).copy(out, off);
  }
  return out;
}

/** A deterministic 32-byte key. */
export function testKey(seed = 1): Buffer {
  return createHash('sha256').update(`arca chunker key ${seed}`).digest();
}

const WORDS = 'the of and to in is it that for on was with as be by at this are from or volume backup pod node'.split(' ');

/** Compressible text-like data: words from a small vocabulary. */
export function textData(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = (seed * 0x9e3779b9) | 1;
  let pos = 0;
  while (pos < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pos += out.write(`${WORDS[(x >>> 0) % WORDS.length] ?? 'x'}${(x & 31) === 0 ? '.\n' : ' '}`, pos, 'latin1');
  }
  return out;
}

/** Chunk lengths of a list of chunks. */
export function lengths(chunks: readonly Uint8Array[]): number[] {
  return chunks.map((c) => c.length);
}

/** Cut offsets (exclusive chunk ends) of a list of chunks. */
export function cutOffsets(chunks: readonly Uint8Array[]): number[] {
  const out: number[] = [];
  let pos = 0;
  for (const c of chunks) {
    pos += c.length;
    out.push(pos);
  }
  return out;
}

export function digest(chunk: Uint8Array): string {
  return createHash('sha256').update(chunk).digest('base64');
}

/**
 * The obvious one-byte-at-a-time FastCDC with the same table, masks and normal point as the
 * implementation under test: the reference the optimized loop must agree with exactly.
 */
export function referenceCuts(
  data: Uint8Array,
  gear: Uint32Array,
  params: ChunkerParams,
  normalSize: number,
  maskS: number,
  maskL: number,
): number[] {
  const cuts: number[] = [];
  let start = 0;
  while (start < data.length) {
    const end = Math.min(start + params.maxSize, data.length);
    let cut = end;
    let h = 0;
    for (let i = start + params.minSize; i < end; i++) {
      h = ((h << 1) + (gear[data[i] ?? 0] ?? 0)) >>> 0;
      const mask = i - start < normalSize ? maskS : maskL;
      if ((h & mask) >>> 0 === 0) {
        cut = i + 1;
        break;
      }
    }
    cuts.push(cut);
    start = cut;
  }
  return cuts;
}
