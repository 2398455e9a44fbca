import { createHash, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blake3 } from '@napi-rs/blake-hash';
import { calibrateKdf, deriveKey, KDF_MAX_LANES, KDF_MAX_N } from '../../repository/crypto/kdf.ts';
import { KEYS_PREFIX, keyName } from '../../repository/object-names.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { tempDir } from '../support/cli.ts';

describe('scrypt calibration', () => {
  it('never holds more than 64 MiB (two lanes at once) however much time it may spend, and spends the rest on lanes', async () => {
    const generous = await calibrateKdf({ targetMs: 60_000 });
    expect(generous).toMatchObject({ N: KDF_MAX_N, r: 8, p: 1, lanes: KDF_MAX_LANES });
    expect(2 * 128 * generous.N * generous.r).toBeLessThanOrEqual(64 << 20);
    const quick = await calibrateKdf({ targetMs: 1 });
    expect(quick).toMatchObject({ N: 1 << 15, r: 8, p: 1, lanes: 2 });
  });

  it('takes a fixed N only when given one: an inherited environment variable cannot weaken a new key', async () => {
    const saved = process.env.ARCA_KDF_N;
    process.env.ARCA_KDF_N = '1024';
    try {
      expect(await calibrateKdf({ targetMs: 1 })).toMatchObject({ N: KDF_MAX_N, lanes: 2 });
    } finally {
      if (saved === undefined) Reflect.deleteProperty(process.env, 'ARCA_KDF_N');
      else process.env.ARCA_KDF_N = saved;
    }
    expect(await calibrateKdf({ fixedN: 1024 })).toMatchObject({ N: 1024, lanes: 1 });
    await expect(calibrateKdf({ fixedN: 1000 })).rejects.toThrow(/power of two/);
  });
});

describe('key derivation', () => {
  const password = Buffer.from('pw');
  const base = { algorithm: 'scrypt' as const, N: 1 << 10, r: 8, p: 1, salt: Buffer.alloc(32, 7) };
  const scrypt = (salt: Buffer): Buffer => scryptSync(password, salt, 32, { N: base.N, r: base.r, p: base.p });

  it('is plain scrypt with one lane, as key files from before lanes expect', async () => {
    expect((await deriveKey(password, { ...base, lanes: 1 })).equals(scrypt(base.salt))).toBe(true);
  });

  it('hashes the lanes together, each lane salted with its number', async () => {
    const lane = (i: number): Buffer => scrypt(Buffer.concat([base.salt, Buffer.from([0, 0, 0, i])]));
    const expected = createHash('sha256').update(Buffer.concat([lane(0), lane(1), lane(2)])).digest();
    expect((await deriveKey(password, { ...base, lanes: 3 })).equals(expected)).toBe(true);
    expect((await deriveKey(password, { ...base, lanes: 2 })).equals(expected)).toBe(false);
  });

  it('refuses a lane count out of range', async () => {
    await expect(deriveKey(password, { ...base, lanes: 0 })).rejects.toThrow(/lanes/);
    await expect(deriveKey(password, { ...base, lanes: KDF_MAX_LANES + 1 })).rejects.toThrow(/lanes/);
  });

  it('opens a repository whose key file predates lanes (no "lanes" field)', async () => {
    const { dir, cleanup } = await tempDir('arca-kdf-');
    try {
      const storage = new LocalStorage(dir);
      await Repository.init(storage, password, {}, { fixedN: 1024 }); // One lane: what such a key file derives.
      let old: { name: string } | undefined;
      for await (const obj of storage.list(KEYS_PREFIX)) old = obj;
      if (!old) throw new Error('no key file');
      const json = JSON.parse((await storage.get(old.name)).toString('utf8')) as { kdf: Record<string, unknown> };
      expect(json.kdf.lanes).toBe(1);
      delete json.kdf.lanes;
      const bytes = Buffer.from(JSON.stringify(json));
      await storage.put(keyName(blake3(bytes).toString('hex')), bytes);
      await storage.delete(old.name);
      await expect(Repository.open(storage, password)).resolves.toBeInstanceOf(Repository);
      await expect(Repository.open(storage, Buffer.from('wrong'))).rejects.toThrow(/password/i);
    } finally {
      await cleanup();
    }
  });
});
