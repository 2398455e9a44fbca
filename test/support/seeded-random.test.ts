import { afterEach, describe, expect, it } from 'vitest';
import { SeededRandom, seedFromEnv } from './seeded-random.ts';

/** The seeded generator the torture tests replay runs with. */
describe('SeededRandom', () => {
  const draws = (r: SeededRandom): unknown[] => [r.int(0, 1000), r.chance(0.5), r.bytes(40).toString('hex'), r.int(-5, 5), r.bytes(0).length];

  it('draws the same values from the same seed, and others from another', () => {
    expect(draws(new SeededRandom(42))).toEqual(draws(new SeededRandom(42)));
    expect(draws(new SeededRandom(42))).not.toEqual(draws(new SeededRandom(43)));
    const r = new SeededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const n = r.int(3, 9);
      expect(n >= 3 && n < 9 && Number.isInteger(n)).toBe(true);
    }
  });

  it('forks streams that depend on the seed and the label, not on draws made elsewhere', () => {
    const a = new SeededRandom(5);
    const b = new SeededRandom(5);
    b.int(0, 10); // a draw on the parent does not move its forks
    expect(draws(a.fork('lane1'))).toEqual(draws(b.fork('lane1')));
    expect(draws(a.fork('lane1'))).not.toEqual(draws(a.fork('lane2')));
    expect(draws(new SeededRandom(6).fork('lane1'))).not.toEqual(draws(a.fork('lane1')));
  });
});

describe('seedFromEnv', () => {
  const name = 'ARCA_TEST_SEED_FROM_ENV';
  afterEach(() => { Reflect.deleteProperty(process.env, name); });

  it('takes the seed from the variable, a fresh one without it, and refuses anything but an integer', () => {
    process.env[name] = '123456';
    expect(seedFromEnv(name)).toBe(123456);
    Reflect.deleteProperty(process.env, name);
    expect(Number.isInteger(seedFromEnv(name))).toBe(true);
    for (const bad of ['-1', '1.5', 'abc', String(2 ** 32)]) {
      process.env[name] = bad;
      expect(() => seedFromEnv(name)).toThrow(name);
    }
  });
});
