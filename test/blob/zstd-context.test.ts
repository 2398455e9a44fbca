import { randomBytes } from 'node:crypto';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ZstdCompressor, ZstdDataError, ZstdDecompressor } from '../../repository/blob/zstd-context.ts';
import { releaseBuffer } from '../../repository/util/release-buffer.ts';

function textLike(size: number, seed: number): Buffer {
  const words = ['pod', 'volume', 'backup', 'restore', 'node', 'pack', 'index', 'snapshot', `w${seed}`];
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const word = words[(i * 7 + seed + (i >> 3)) % words.length] ?? '';
    parts.push(word);
    length += word.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, size);
}

describe('reused zstd contexts', () => {
  it('compress many inputs of different sizes with one context, each a frame that one-shot zstd decodes', () => {
    const compressor = new ZstdCompressor(3);
    const decompressor = new ZstdDecompressor();
    const out = Buffer.alloc(2 << 20);
    const plain = Buffer.alloc((2 << 20) + 1);
    for (const [i, size] of [200, 1000, 65_536, 1 << 20, 300, 2 << 20].entries()) {
      const input = textLike(size, i);
      const length = compressor.compressInto(input, out, input.length - 1);
      expect(length).toBeGreaterThan(0);
      expect(zstdDecompressSync(out.subarray(0, length)).equals(input)).toBe(true);
      expect(plain.subarray(0, decompressor.decompressInto(out.subarray(0, length), plain)).equals(input)).toBe(true);
    }
  });

  it('give -1 for input that does not shrink below the limit, and the context goes on working', () => {
    const compressor = new ZstdCompressor(3);
    const out = Buffer.alloc(1 << 20);
    const random = randomBytes(1 << 20);
    expect(compressor.compressInto(random, out, random.length - 1)).toBe(-1);
    const text = textLike(100_000, 1);
    expect(compressor.compressInto(text, out, 10)).toBe(-1);
    const length = compressor.compressInto(text, out, text.length - 1);
    expect(zstdDecompressSync(out.subarray(0, length)).equals(text)).toBe(true);
  });

  it('refuse damaged frames, trailing data and content larger than the output with ZstdDataError, then decode good frames again', () => {
    const decompressor = new ZstdDecompressor();
    const text = textLike(50_000, 2);
    const frame = zstdCompressSync(text);
    const out = Buffer.alloc(text.length + 1);
    const damaged = Buffer.from(frame);
    const middle = Math.floor(damaged.length / 2);
    damaged.writeUInt8(damaged.readUInt8(middle) ^ 0xff, middle);
    const cases = [Buffer.from('not a zstd frame at all'), damaged, frame.subarray(0, frame.length - 3), Buffer.concat([frame, frame])];
    for (const bad of cases) {
      let thrown: unknown;
      try {
        decompressor.decompressInto(bad, out);
      } catch (err) {
        thrown = err;
      }
      // A flipped bit in the middle may still decode (zstd frames carry no checksum here): then
      // the content differs, which the blob ID check catches one level up.
      if (thrown === undefined) expect(bad).toBe(damaged);
      else expect(thrown).toBeInstanceOf(ZstdDataError);
      expect(out.subarray(0, decompressor.decompressInto(frame, out)).equals(text)).toBe(true);
    }
    expect(() => decompressor.decompressInto(frame, Buffer.alloc(text.length))).toThrow(ZstdDataError);
  });
});

describe('releaseBuffer', () => {
  it('frees a buffer that owns its memory, and leaves views into shared memory alone', () => {
    const owned = Buffer.allocUnsafeSlow(1 << 20);
    releaseBuffer(owned);
    expect(owned.length).toBe(0);
    const big = Buffer.alloc(4096);
    const view = big.subarray(100, 200);
    releaseBuffer(view);
    expect(view.length).toBe(100);
    expect(big.length).toBe(4096);
    const pooled = Buffer.from('small');
    releaseBuffer(pooled);
    expect(pooled.toString()).toBe('small');
    releaseBuffer(owned); // twice is harmless
  });
});
