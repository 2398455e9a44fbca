import { randomBytes } from 'node:crypto';
import type { BlobLocation, BlobType } from '../../repository/index/index.ts';

/** Deterministic xorshift32 PRNG so failures are reproducible. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** `count` distinct random 32-byte ids (distinct with overwhelming probability). */
export function randomIds(count: number): Buffer[] {
  const pool = randomBytes(count * 32);
  const ids: Buffer[] = [];
  for (let i = 0; i < count; i++) ids.push(Buffer.from(pool.subarray(i * 32, i * 32 + 32)));
  return ids;
}

export function randomLocation(rand: () => number, packIds: Buffer[]): BlobLocation {
  const packId = packIds[rand() % packIds.length];
  if (packId === undefined) throw new Error('no pack ids');
  const type: BlobType = (rand() & 7) === 0 ? 'tree' : 'data';
  const length = 1 + (rand() % 5_000_000);
  return { packId, type, offset: rand() % 0x8000_0000, length, rawLength: rand() };
}

export const hex = (b: Buffer): string => b.toString('hex');
