import { createCipheriv, createHash, randomInt } from 'node:crypto';

/** mulberry32: a small seeded PRNG with values in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random choices drawn from a seed, so that a failing run can be replayed with the same seed. */
export class SeededRandom {
  readonly seed: number;
  private readonly next: () => number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.next = mulberry32(this.seed);
  }

  /** An integer in [min, max). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** `size` pseudo-random bytes: an AES-256-CTR keystream keyed by this generator's next draws. */
  bytes(size: number): Buffer {
    const key = Buffer.alloc(48);
    for (let i = 0; i < 48; i += 4) key.writeUInt32LE(this.int(0, 2 ** 32), i);
    const cipher = createCipheriv('aes-256-ctr', key.subarray(0, 32), key.subarray(32));
    return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
  }

  /**
   * An independent generator for one part of a run (a lane, a loop): its draws do not depend on
   * how the parts interleave, which varies from run to run.
   */
  fork(label: string): SeededRandom {
    return new SeededRandom(createHash('sha256').update(`${this.seed}:${label}`).digest().readUInt32LE(0));
  }
}

/** The seed in environment variable `name` (a non-negative integer) if set, else a fresh random one. */
export function seedFromEnv(name: string): number {
  const text = process.env[name];
  if (text === undefined || text === '') return randomInt(2 ** 31);
  if (!/^\d+$/.test(text) || Number(text) >= 2 ** 32) throw new Error(`${name} must be an integer in [0, 2^32), not "${text}"`);
  return Number(text);
}
