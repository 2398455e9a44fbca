import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { calibrateKdf, deriveKey, KDF_MAX_N } from '../../repository/crypto/kdf.ts';

describe('scrypt calibration', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.ARCA_KDF_N;
    Reflect.deleteProperty(process.env, 'ARCA_KDF_N');
  });
  afterEach(() => {
    if (saved !== undefined) process.env.ARCA_KDF_N = saved;
  });

  it('never asks for more than 64 MiB however much time it may spend, and spends the rest on p', async () => {
    const generous = await calibrateKdf(60_000);
    expect(generous.N).toBe(KDF_MAX_N);
    expect(128 * generous.N * generous.r).toBeLessThanOrEqual(64 << 20);
    expect(generous.p).toBeGreaterThan(1);
    const quick = await calibrateKdf(1);
    expect(quick).toMatchObject({ N: 1 << 15, r: 8, p: 1 });
  });

  it('derives the same key from the same parameters, and another from another p', async () => {
    const params = { algorithm: 'scrypt' as const, N: 1 << 10, r: 8, p: 2, salt: Buffer.alloc(32, 7) };
    const password = Buffer.from('pw');
    expect((await deriveKey(password, params)).equals(await deriveKey(password, params))).toBe(true);
    expect((await deriveKey(password, { ...params, p: 1 })).equals(await deriveKey(password, params))).toBe(false);
  });
});
