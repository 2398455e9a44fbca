import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ArcaError, OperationCanceledError } from '../../repository/errors.ts';
import { forEachLimited } from '../../repository/storage/remote.ts';
import {
  ObjectNotFoundError, ShortReadError, StorageAuthError, type ObjectInfo, type Storage,
} from '../../repository/storage/storage.ts';

/**
 * The one suite every Storage backend passes unchanged (design §3). A backend's test file starts
 * its server, then calls `storageConformance` with a factory; each test gets a fresh, empty
 * storage (its own directory or key prefix), so the tests do not see each other's objects.
 */
export interface ConformanceBackend {
  /** An empty storage at a location no other test uses. */
  fresh(): Promise<Storage>;
  /**
   * The same kind of storage, at a location that exists, with credentials the service refuses;
   * or a string saying why the backend cannot show that (the case is then skipped with it).
   */
  readonly badCredentials: (() => Promise<Storage>) | string;
  /** Cases a test server cannot show, each with the reason it is skipped. */
  readonly skip?: { readonly [K in SkippableCase]?: string };
}

export type SkippableCase = 'rangeOfEmptyObject' | 'putCutOff';

const MiB = 1024 * 1024;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const DAY_MS = 24 * 3600_000;

/**
 * Name and size of `info`, after checking that it carries the storage's modification time (prune
 * measures lease ages on that clock, so every backend must report it) within a day of now.
 */
function nameAndSize(info: ObjectInfo): ObjectInfo {
  const { modified, ...rest } = info;
  expect(modified, `modification time of ${info.name}`).toBeTypeOf('number');
  expect(Math.abs((modified ?? 0) - Date.now()), `modification time of ${info.name}`).toBeLessThan(DAY_MS);
  return rest;
}

async function listAll(storage: Storage, prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of storage.list(prefix, { signal })) out.push(nameAndSize(info));
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** A name shaped like a pack's: data/<2 hex>/<64 hex>. */
function packName(seed: number): string {
  const id = createHash('sha256').update(String(seed)).digest('hex');
  return `data/${id.slice(0, 2)}/${id}`;
}

export function storageConformance(backend: string, factory: ConformanceBackend): void {
  describe(`Storage conformance: ${backend}`, () => {
    it('stores an object and reads it back whole, with stat giving its size', async () => {
      const storage = await factory.fresh();
      const data = randomBytes(100_000);
      await storage.put('config', data);
      expect((await storage.get('config')).equals(data)).toBe(true);
      expect(nameAndSize(await storage.stat('config'))).toEqual({ name: 'config', size: data.length });
    });

    it('reads byte ranges: from the start, the middle, up to the last byte, a single byte, zero bytes', async () => {
      const storage = await factory.fresh();
      const data = randomBytes(10_000);
      const name = packName(1);
      await storage.put(name, data);
      for (const [offset, length] of [[0, 100], [1234, 5000], [9000, 1000], [9999, 1], [0, 10_000], [500, 0]] as const) {
        const got = await storage.get(name, { offset, length });
        expect(got.length).toBe(length);
        expect(got.equals(data.subarray(offset, offset + length))).toBe(true);
      }
    });

    it('reports a range past the end as ShortReadError, whether it starts inside or beyond the object', async () => {
      const storage = await factory.fresh();
      const name = packName(2);
      await storage.put(name, randomBytes(1000));
      const partly = await rejection(storage.get(name, { offset: 900, length: 200 }));
      expect(partly).toBeInstanceOf(ShortReadError);
      expect((partly as ShortReadError).code).toBe('ARCA_ERR_SHORT_READ');
      expect(await rejection(storage.get(name, { offset: 1000, length: 10 }))).toBeInstanceOf(ShortReadError);
      expect(await rejection(storage.get(name, { offset: 5000, length: 10 }))).toBeInstanceOf(ShortReadError);
    });

    it('stores content given in parts (including empty parts) as their concatenation', async () => {
      const storage = await factory.fresh();
      const parts = [randomBytes(10), new Uint8Array(0), randomBytes(70_000), randomBytes(1), new Uint8Array(0)];
      const name = packName(3);
      await storage.put(name, parts);
      expect((await storage.get(name)).equals(Buffer.concat(parts))).toBe(true);
      expect((await storage.stat(name)).size).toBe(70_011);
    });

    it('stores an object of 0 bytes', async () => {
      const storage = await factory.fresh();
      await storage.put('index/empty', new Uint8Array(0));
      expect((await storage.get('index/empty')).length).toBe(0);
      expect((await storage.get('index/empty', { offset: 0, length: 0 })).length).toBe(0);
      expect(nameAndSize(await storage.stat('index/empty'))).toEqual({ name: 'index/empty', size: 0 });
      expect(await listAll(storage, 'index/')).toEqual([{ name: 'index/empty', size: 0 }]);
      await storage.put('keys/empty-parts', []);
      expect((await storage.stat('keys/empty-parts')).size).toBe(0);
    });

    const skipEmptyRange = factory.skip?.rangeOfEmptyObject;
    const emptyRangeTitle = 'reports a range read of an empty object as ShortReadError';
    if (skipEmptyRange !== undefined) {
      it.skip(`${emptyRangeTitle} (skipped: ${skipEmptyRange})`, () => undefined);
    } else {
      it(emptyRangeTitle, async () => {
        const storage = await factory.fresh();
        await storage.put('index/empty', new Uint8Array(0));
        expect(await rejection(storage.get('index/empty', { offset: 0, length: 1 }))).toBeInstanceOf(ShortReadError);
      });
    }

    it('keeps names under nested prefixes apart and lists by prefix, including a prefix that ends mid-name', async () => {
      const storage = await factory.fresh();
      const names = ['config', 'keys/k1', 'index/i1', 'index/i2', 'data/ab/ab01', 'data/ab/ab02', 'data/ac/ac01', 'a/b/c/d/e', 'a/b/c/f', 'a/bc'];
      await Promise.all(names.map((name, i) => storage.put(name, Buffer.alloc(i + 1, i))));
      for (const [i, name] of names.entries()) expect((await storage.get(name)).equals(Buffer.alloc(i + 1, i))).toBe(true);
      const sizeOf = (name: string): number => names.indexOf(name) + 1;
      const expected = (picked: string[]): ObjectInfo[] => picked.sort().map((name) => ({ name, size: sizeOf(name) }));
      expect(await listAll(storage, '')).toEqual(expected([...names]));
      expect(await listAll(storage, 'data/')).toEqual(expected(['data/ab/ab01', 'data/ab/ab02', 'data/ac/ac01']));
      expect(await listAll(storage, 'data/ab/')).toEqual(expected(['data/ab/ab01', 'data/ab/ab02']));
      expect(await listAll(storage, 'data/a')).toEqual(expected(['data/ab/ab01', 'data/ab/ab02', 'data/ac/ac01']));
      expect(await listAll(storage, 'index/i')).toEqual(expected(['index/i1', 'index/i2']));
      expect(await listAll(storage, 'a/b/')).toEqual(expected(['a/b/c/d/e', 'a/b/c/f']));
      expect(await listAll(storage, 'a/b')).toEqual(expected(['a/b/c/d/e', 'a/b/c/f', 'a/bc']));
      expect(await listAll(storage, 'snapshots/')).toEqual([]);
      expect(await listAll(storage, 'nothing/here/')).toEqual([]);
    });

    it('lists a prefix with more than 1,000 objects completely (1,100 put concurrently)', async () => {
      const storage = await factory.fresh();
      const names = Array.from({ length: 1100 }, (_, i) => `snapshots/${createHash('sha256').update(`s${i}`).digest('hex')}`);
      await forEachLimited(names, 32, (name, i) => storage.put(name, Buffer.from(`snapshot ${i}`)));
      await storage.put('index/outside', Buffer.from('not a snapshot'));
      const listed = await listAll(storage, 'snapshots/');
      expect(listed.length).toBe(1100);
      expect(new Set(listed.map((o) => o.name)).size).toBe(1100);
      expect(listed).toEqual(names.map((name, i) => ({ name, size: `snapshot ${i}`.length })).sort((a, b) => (a.name < b.name ? -1 : 1)));
    });

    it('deletes objects; deleting an absent object is not an error', async () => {
      const storage = await factory.fresh();
      await storage.put('keys/k1', Buffer.from('key one'));
      await storage.put('keys/k2', Buffer.from('key two'));
      await storage.delete('keys/k1');
      expect(await rejection(storage.get('keys/k1'))).toBeInstanceOf(ObjectNotFoundError);
      expect(await listAll(storage, 'keys/')).toEqual([{ name: 'keys/k2', size: 7 }]);
      await storage.delete('keys/k1');
      await storage.delete('keys/never-existed');
      await storage.delete('no/such/prefix/either');
    });

    // Leases come and go under one prefix while other writers add theirs: a delete that empties a
    // prefix must not break a put under it (s3rver's did, and crashed; see s3rver-process.ts).
    it('puts under a prefix while deletes empty it, and keeps every object that was put', async () => {
      const storage = await factory.fresh();
      for (let round = 0; round < 30; round++) {
        const leaving = `leases/${String(round).padStart(32, '0')}`;
        const arriving = `leases/${String(round).padStart(32, '1')}`;
        await storage.put(leaving, Buffer.from('old'));
        await Promise.all([storage.delete(leaving), storage.put(arriving, Buffer.from(`new ${round}`))]);
        expect((await storage.get(arriving)).toString()).toBe(`new ${round}`);
        await storage.delete(arriving);
      }
      await storage.put('leases/last', Buffer.from('still works'));
      expect(await listAll(storage, 'leases/')).toEqual([{ name: 'leases/last', size: 11 }]);
    });

    it('reports absent objects as ObjectNotFoundError from get, a range get and stat', async () => {
      const storage = await factory.fresh();
      for (const call of [() => storage.get('config'), () => storage.get(packName(4), { offset: 0, length: 10 }), () => storage.stat('index/absent')]) {
        const err = await rejection(call());
        expect(err).toBeInstanceOf(ObjectNotFoundError);
        expect((err as ObjectNotFoundError).code).toBe('ARCA_ERR_OBJECT_NOT_FOUND');
      }
      expect(((await rejection(storage.stat('index/absent'))) as ObjectNotFoundError).objectName).toBe('index/absent');
    });

    it('stops every call whose signal has fired with OperationCanceledError, before it reaches the storage', async () => {
      const storage = await factory.fresh();
      const data = randomBytes(1000);
      const name = packName(7);
      await storage.put(name, data);
      const fired = AbortSignal.abort();
      const calls: Array<() => Promise<unknown>> = [
        () => storage.put(packName(8), data, { signal: fired }), () => storage.get(name, undefined, { signal: fired }),
        () => storage.get(name, { offset: 1, length: 10 }, { signal: fired }), () => storage.stat(name, { signal: fired }),
        () => listAll(storage, 'data/', fired), () => storage.delete(name, { signal: fired }),
      ];
      for (const call of calls) expect(await rejection(call())).toBeInstanceOf(OperationCanceledError);
      expect((await storage.get(name)).equals(data)).toBe(true);
      expect(await rejection(storage.stat(packName(8)))).toBeInstanceOf(ObjectNotFoundError);
    });

    const cutOffTitle = 'a put cancelled midway leaves nothing or the whole object, never a part';
    const skipCutOff = factory.skip?.putCutOff;
    if (skipCutOff !== undefined) it.skip(`${cutOffTitle} (skipped: ${skipCutOff})`, () => undefined);
    else it(cutOffTitle, async () => {
      const storage = await factory.fresh();
      const big = randomBytes(24 * MiB);
      const controller = new AbortController();
      const putting = storage.put(packName(9), big, { signal: controller.signal });
      setTimeout(() => { controller.abort(); }, 5);
      const outcome = await putting.then(() => undefined, (err: unknown) => err);
      if (outcome !== undefined) expect(outcome).toBeInstanceOf(OperationCanceledError);
      const after = await storage.get(packName(9)).catch((err: unknown) => err);
      if (after instanceof Buffer) expect(sha256(after)).toBe(sha256(big));
      else expect(after).toBeInstanceOf(ObjectNotFoundError);
    });

    it('rejects names that could leave the repository or are not ours, before any request', async () => {
      const storage = await factory.fresh();
      for (const bad of ['../escape', '/absolute', 'a/../b', 'UPPER', 'trailing/', '', 'a//b']) {
        const err = await rejection(storage.put(bad, Buffer.from('x')));
        expect((err as ArcaError).code).toBe('ARCA_ERR_OBJECT_NAME');
        expect(((await rejection(storage.get(bad))) as ArcaError).code).toBe('ARCA_ERR_OBJECT_NAME');
      }
    });

    // Objects are immutable by contract and named by their content, so a second put of a name
    // carries the same bytes (two writers producing the same pack). No backend refuses it: each
    // replaces the object atomically, so a put with different bytes (which Arca never makes)
    // leaves the newer object whole — never a mixture, never a corrupted one.
    it('a second put of an existing name: same bytes leave it intact; different bytes replace it whole', async () => {
      const storage = await factory.fresh();
      const name = packName(5);
      const first = randomBytes(50_000);
      await storage.put(name, first);
      await storage.put(name, [first.subarray(0, 1), first.subarray(1)]);
      expect((await storage.get(name)).equals(first)).toBe(true);
      await Promise.all([storage.put(name, first), storage.put(name, first), storage.put(name, first)]);
      expect((await storage.get(name)).equals(first)).toBe(true);
      const second = randomBytes(20_000);
      await storage.put(name, second);
      expect((await storage.get(name)).equals(second)).toBe(true);
      expect((await storage.stat(name)).size).toBe(second.length);
      expect(await listAll(storage, 'data/')).toEqual([{ name, size: second.length }]);
    });

    it('serves many concurrent puts and gets of different objects', async () => {
      const storage = await factory.fresh();
      const objects = Array.from({ length: 40 }, (_, i) => ({ name: packName(100 + i), data: randomBytes(1000 + i * 997) }));
      await Promise.all(objects.map((o) => storage.put(o.name, o.data)));
      const back = await Promise.all(objects.map((o) => storage.get(o.name)));
      back.forEach((data, i) => { expect(data.equals(objects[i]?.data ?? Buffer.alloc(0))).toBe(true); });
    });

    it('stores 100 MiB given in uneven parts and reads it back identical (whole and ranges)', async () => {
      const storage = await factory.fresh();
      const whole = randomBytes(100 * MiB);
      const cuts = [0, 1, 7 * MiB + 3, 16 * MiB, 16 * MiB + 1, 50 * MiB - 5, 99 * MiB, 100 * MiB];
      const parts = cuts.slice(1).map((end, i) => whole.subarray(cuts[i], end));
      const name = packName(6);
      await storage.put(name, parts);
      expect((await storage.stat(name)).size).toBe(100 * MiB);
      expect(sha256(await storage.get(name))).toBe(sha256(whole));
      for (const [offset, length] of [[16 * MiB - 10, 20], [64 * MiB - 1, 2 * MiB], [100 * MiB - 1, 1]] as const) {
        expect((await storage.get(name, { offset, length })).equals(whole.subarray(offset, offset + length))).toBe(true);
      }
      await storage.delete(name);
      expect(await listAll(storage, 'data/')).toEqual([]);
    });

    const bad = factory.badCredentials;
    if (typeof bad === 'string') {
      it.skip(`refuses bad credentials with StorageAuthError (skipped: ${bad})`, () => undefined);
    } else {
      it('refuses bad credentials with StorageAuthError on put, get, stat, list and delete', async () => {
        const storage = await bad();
        const calls: (() => Promise<unknown>)[] = [
          () => storage.put('config', Buffer.from('x')),
          () => storage.get('config'),
          () => storage.get(packName(7), { offset: 0, length: 10 }),
          () => storage.stat('config'),
          () => listAll(storage, ''),
          () => storage.delete('config'),
        ];
        for (const call of calls) {
          const err = await rejection(call());
          expect(err).toBeInstanceOf(StorageAuthError);
          expect((err as StorageAuthError).code).toBe('ARCA_ERR_STORAGE_AUTH');
          expect((err as StorageAuthError).message).toMatch(/check the credentials/);
          expect((err as StorageAuthError).transient).toBe(false);
        }
      });
    }
  });
}
