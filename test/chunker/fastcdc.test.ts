import { describe, expect, it } from 'vitest';
import {
  ChunkerArgumentError,
  ChunkerParamsError,
  DEFAULT_CHUNKER_PARAMS,
  FastCdc,
  chunkBuffer,
  gearTable,
  type ChunkerParams,
} from '../../chunker/index.ts';
import { KiB, MiB, cutOffsets, digest, lengths, randomData, referenceCuts, testKey, textData } from './helpers.ts';

const SMALL: ChunkerParams = { minSize: 2 * KiB, avgSize: 8 * KiB, maxSize: 64 * KiB };
const TINY: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
  return n;
}

function checkBounds(chunks: readonly Buffer[], params: ChunkerParams): void {
  chunks.forEach((c, i) => {
    expect(c.length).toBeLessThanOrEqual(params.maxSize);
    if (i < chunks.length - 1) expect(c.length).toBeGreaterThan(params.minSize);
    expect(c.length).toBeGreaterThan(0);
  });
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Fraction of the chunks of `a` (by content) that also occur in `b`. */
function preserved(a: readonly Buffer[], b: readonly Buffer[]): number {
  const inB = new Set(b.map(digest));
  return a.filter((c) => inB.has(digest(c))).length / a.length;
}

describe('FastCdc', () => {
  it('uses the default parameters and derives masks and normal point from them', () => {
    const cdc = new FastCdc(testKey());
    expect(cdc.params).toEqual(DEFAULT_CHUNKER_PARAMS);
    expect(popcount(cdc.maskS)).toBe(22);
    expect(popcount(cdc.maskL)).toBe(18);
    expect(cdc.maskS >>> 30).toBe(1); // top bit is bit 30, so maskS << 1 still fits 32 bits
    expect(cdc.maskL >>> 30).toBe(1);
    expect(cdc.normalSize).toBeGreaterThan(cdc.params.minSize);
    expect(cdc.normalSize).toBeLessThan(cdc.params.avgSize);
  });

  it('validates its parameters and key', () => {
    expect(() => new FastCdc(testKey(), { avgSize: 1000 })).toThrow(ChunkerParamsError);
    expect(() => new FastCdc(new Uint8Array(16))).toThrow(/exactly 32 bytes/);
  });

  it('validates findCut ranges', () => {
    const cdc = new FastCdc(testKey(), TINY);
    const buf = randomData(100);
    expect(() => cdc.findCut(buf, -1, 10, true)).toThrow(ChunkerArgumentError);
    expect(() => cdc.findCut(buf, 5, 4, true)).toThrow(/range \[5, 4\)/);
    expect(() => cdc.findCut(buf, 0, 101, true)).toThrow(/100 bytes/);
    expect(() => cdc.findCut(buf, 0.5, 10, true)).toThrow(ChunkerArgumentError);
    expect(() => cdc.resumeCut(buf, 0, 10, TINY.maxSize, 0, true)).toThrow(/chunk offset/);
  });

  it('cuts only when decided: short ranges need more input unless at end of input', () => {
    const cdc = new FastCdc(testKey(), TINY);
    const buf = randomData(4096);
    expect(cdc.findCut(buf, 0, 0, true)).toBe(-1);
    expect(cdc.findCut(buf, 10, 10, false)).toBe(-1);
    expect(cdc.findCut(buf, 0, 64, false)).toBe(-1);
    expect(cdc.findCut(buf, 0, 64, true)).toBe(64);
    expect(cdc.findCut(buf, 100, 101, true)).toBe(101);
    // A full max-size window always gives a cut, eof or not.
    const c = cdc.findCut(buf, 7, 7 + 1024, false);
    expect(c).toBeGreaterThan(7 + 64);
    expect(c).toBeLessThanOrEqual(7 + 1024);
    expect(cdc.findCut(buf, 7, 4096, false)).toBe(c);
  });

  it('agrees exactly with a plain one-byte-per-step reference implementation', () => {
    for (const [params, data] of [
      [SMALL, randomData(8 * MiB, 11)],
      [SMALL, textData(4 * MiB, 12)],
      [TINY, randomData(MiB + 3, 13)],
      [{ minSize: 333, avgSize: 1024, maxSize: 3001 }, randomData(MiB + 1, 14)],
    ] as const) {
      const key = testKey(5);
      const cdc = new FastCdc(key, params);
      const expected = referenceCuts(data, gearTable(key), params, cdc.normalSize, cdc.maskS, cdc.maskL);
      expect(cutOffsets(chunkBuffer(cdc, data))).toEqual(expected);
      expect(expected.length).toBeGreaterThan(data.length / params.avgSize / 2);
    }
  });

  it('is deterministic and the chunks concatenate to the input', () => {
    const data = randomData(16 * MiB, 21);
    const a = chunkBuffer(new FastCdc(testKey(1), SMALL), data);
    const b = chunkBuffer(new FastCdc(testKey(1), SMALL), Buffer.from(data));
    expect(lengths(a)).toEqual(lengths(b));
    expect(Buffer.concat(a).equals(data)).toBe(true);
    expect(a.every((c) => c.buffer === data.buffer)).toBe(true); // views, no copies
  });

  it('gives no chunk for empty input and one chunk for input up to minSize', () => {
    const cdc = new FastCdc(testKey());
    expect(chunkBuffer(cdc, Buffer.alloc(0))).toEqual([]);
    expect(lengths(chunkBuffer(cdc, randomData(1)))).toEqual([1]);
    expect(lengths(chunkBuffer(cdc, randomData(512 * KiB)))).toEqual([512 * KiB]);
    expect(lengths(chunkBuffer(cdc, new Uint8Array(3)))).toEqual([3]);
  });

  it('respects min and max on random, text and degenerate data', () => {
    for (const params of [DEFAULT_CHUNKER_PARAMS, SMALL, TINY]) {
      const cdc = new FastCdc(testKey(2), params);
      for (const data of [
        randomData(40 * params.avgSize, 31),
        textData(20 * params.avgSize, 32),
        Buffer.alloc(20 * params.avgSize), // zeros: constant hash, cut at min+k or max
        Buffer.alloc(20 * params.avgSize + 17, 0xa5),
      ]) {
        const chunks = chunkBuffer(cdc, data);
        checkBounds(chunks, params);
        expect(Buffer.concat(chunks).equals(data)).toBe(true);
      }
    }
  });

  it('hits the target mean chunk size within ±15% on random data (default params, 256 MiB)', () => {
    const data = randomData(256 * MiB, 41);
    const cdc = new FastCdc(testKey(3));
    const chunks = chunkBuffer(cdc, data);
    checkBounds(chunks, cdc.params);
    const m = mean(lengths(chunks));
    expect(m).toBeGreaterThan(0.85 * MiB);
    expect(m).toBeLessThan(1.15 * MiB);
  });

  it('hits the target mean chunk size within ±15% on random data (8 KiB average, ~4000 chunks)', () => {
    for (const params of [SMALL, { minSize: 2 * KiB, avgSize: 8 * KiB, maxSize: 16 * KiB }, { minSize: 64, avgSize: 8 * KiB, maxSize: 64 * KiB }]) {
      const cdc = new FastCdc(testKey(4), params);
      const m = mean(lengths(chunkBuffer(cdc, randomData(32 * MiB, 42))));
      expect(m).toBeGreaterThan(0.85 * params.avgSize);
      expect(m).toBeLessThan(1.15 * params.avgSize);
    }
  });

  it('keeps >= 95% of the chunks after a 1-byte insertion near the start of 64 MiB', () => {
    const data = randomData(64 * MiB, 51);
    const edited = Buffer.concat([data.subarray(0, 1000), Buffer.from([0x42]), data.subarray(1000)]);
    for (const params of [DEFAULT_CHUNKER_PARAMS, { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 512 * KiB }]) {
      const cdc = new FastCdc(testKey(6), params);
      const before = chunkBuffer(cdc, data);
      const after = chunkBuffer(cdc, edited);
      const fraction = preserved(before, after);
      console.log(`avg ${params.avgSize}: ${before.length} chunks, preserved fraction ${fraction.toFixed(4)}`);
      expect(fraction).toBeGreaterThanOrEqual(0.95);
      // Everything after the first changed chunk or two is identical.
      expect(lengths(after).slice(2)).toEqual(lengths(before).slice(2));
    }
  });

  it('keeps most chunks after an insertion and a deletion in the middle', () => {
    const params = { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 512 * KiB };
    const data = randomData(64 * MiB, 52);
    const mid = 32 * MiB + 12345;
    const inserted = Buffer.concat([data.subarray(0, mid), randomData(100, 53), data.subarray(mid)]);
    const deleted = Buffer.concat([data.subarray(0, mid), data.subarray(mid + 5000)]);
    const cdc = new FastCdc(testKey(7), params);
    const before = chunkBuffer(cdc, data);
    expect(preserved(before, chunkBuffer(cdc, inserted))).toBeGreaterThanOrEqual(0.99);
    expect(preserved(before, chunkBuffer(cdc, deleted))).toBeGreaterThanOrEqual(0.99);
  });

  it('gives different boundaries for different keys', () => {
    const data = randomData(16 * MiB, 61);
    const cuts1 = cutOffsets(chunkBuffer(new FastCdc(testKey(1), SMALL), data));
    const cuts2 = new Set(cutOffsets(chunkBuffer(new FastCdc(testKey(2), SMALL), data)));
    const shared = cuts1.filter((c) => cuts2.has(c)).length;
    expect(cuts1.length).toBeGreaterThan(1000);
    // Boundaries coincide only by chance (plus the end of the input).
    expect(shared / cuts1.length).toBeLessThan(0.05);

    const big = randomData(64 * MiB, 62);
    const a = cutOffsets(chunkBuffer(new FastCdc(testKey(1)), big));
    const b = new Set(cutOffsets(chunkBuffer(new FastCdc(testKey(2)), big)));
    expect(a.filter((c) => b.has(c)).length).toBeLessThanOrEqual(3);
  });

  it('does not depend on where the input sits in memory or on bytes outside the range', () => {
    const data = randomData(2 * MiB, 71);
    const cdc = new FastCdc(testKey(8), SMALL);
    const expected = cutOffsets(chunkBuffer(cdc, data));
    const padded = Buffer.concat([randomData(777, 72), data, randomData(999, 73)]);
    const cuts: number[] = [];
    for (let pos = 777; pos < 777 + data.length; ) {
      pos = cdc.findCut(padded, pos, 777 + data.length, true);
      cuts.push(pos - 777);
    }
    expect(cuts).toEqual(expected);
    const u8 = new Uint8Array(data);
    expect(cutOffsets(chunkBuffer(cdc, u8))).toEqual(expected);
  });
});
