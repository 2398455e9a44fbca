import { describe, expect, it } from 'vitest';
import { ChunkerKeyError, gearTable } from '../../chunker/index.ts';
import { testKey } from './helpers.ts';

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
  return n;
}

describe('gearTable', () => {
  it('gives 256 deterministic 32-bit entries', () => {
    const a = gearTable(testKey(1));
    const b = gearTable(new Uint8Array(testKey(1)));
    expect(a).toBeInstanceOf(Uint32Array);
    expect(a.length).toBe(256);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(new Set(a).size).toBe(256);
  });

  it('looks random: about half of the 8192 bits are set', () => {
    const bits = Array.from(gearTable(testKey(2))).reduce((n, v) => n + popcount(v), 0);
    expect(bits).toBeGreaterThan(4096 - 300);
    expect(bits).toBeLessThan(4096 + 300);
  });

  it('depends on every key byte', () => {
    const base = testKey(3);
    const t0 = Array.from(gearTable(base));
    for (const pos of [0, 17, 31]) {
      const k = Buffer.from(base);
      k[pos] = (k[pos] ?? 0) ^ 1;
      const t1 = Array.from(gearTable(k));
      const same = t0.filter((v, i) => v === t1[i]).length;
      expect(same).toBeLessThan(3);
    }
  });

  it('accepts a key that is a view into a larger buffer', () => {
    const big = Buffer.concat([Buffer.alloc(5, 9), testKey(4), Buffer.alloc(7, 9)]);
    expect(Array.from(gearTable(big.subarray(5, 37)))).toEqual(Array.from(gearTable(testKey(4))));
  });

  it('rejects keys that are not 32 bytes', () => {
    for (const len of [0, 16, 31, 33, 64]) {
      expect(() => gearTable(new Uint8Array(len))).toThrow(ChunkerKeyError);
    }
    try {
      gearTable(new Uint8Array(31));
      expect.unreachable();
    } catch (err) {
      expect((err as ChunkerKeyError).code).toBe('ARCA_ERR_CHUNKER_KEY');
      expect((err as ChunkerKeyError).message).toMatch(/exactly 32 bytes, got 31/);
    }
    expect(() => gearTable('x'.repeat(32) as unknown as Uint8Array)).toThrow(/must be a Uint8Array/);
  });
});
