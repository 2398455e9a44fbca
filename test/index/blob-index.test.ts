import { describe, expect, it } from 'vitest';
import {
  BlobIndex,
  IndexArgumentError,
  IndexConcurrentModificationError,
  type BlobLocation,
} from '../../repository/index/index.ts';
import { hex, prng, randomIds, randomLocation } from './helpers.ts';

const loc = (packId: Buffer, offset = 0, over: Partial<BlobLocation> = {}): BlobLocation => ({
  packId,
  type: 'data',
  offset,
  length: 100,
  rawLength: 90,
  ...over,
});

/** Fast structural equality for hot test loops (vitest's deep equality is slow). */
function sameLocation(a: BlobLocation | undefined, b: BlobLocation | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.packId.equals(b.packId) &&
    a.type === b.type &&
    a.offset === b.offset &&
    a.length === b.length &&
    a.rawLength === b.rawLength
  );
}

/** Expects `fn` to throw an `IndexArgumentError` with its code. */
function expectArgumentError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(IndexArgumentError);
  expect((caught as IndexArgumentError).code).toBe('ARCA_ERR_INDEX_ARGUMENT');
}

describe('BlobIndex', () => {
  it('is empty when new', () => {
    const index = new BlobIndex();
    const [id] = randomIds(1);
    if (id === undefined) throw new Error('unreachable');
    expect(index.size).toBe(0);
    expect(index.packCount).toBe(0);
    expect(index.has(id)).toBe(false);
    expect(index.get(id)).toBeUndefined();
    expect([...index.entries()]).toEqual([]);
    expect(index.packIds()).toEqual([]);
    expect(index.blobsInPack(id)).toEqual([]);
  });

  it('matches a Map over 200k random ids, including absent-id lookups', () => {
    const N = 200_000;
    const rand = prng(12345);
    const ids = randomIds(N);
    const packs = randomIds(Math.ceil(N / 16));
    const absent = randomIds(N);
    const expected = new Map<string, BlobLocation>();
    const index = new BlobIndex();

    let failures = 0;
    for (let i = 0; i < N; i++) {
      const id = ids[i] as Buffer;
      const l = randomLocation(rand, packs);
      expected.set(hex(id), l);
      if (!index.add(id, l)) failures++;
      // The newest id and a random earlier one stay visible across merges.
      if (!index.has(id)) failures++;
      const earlier = ids[rand() % (i + 1)] as Buffer;
      if (!sameLocation(index.get(earlier), expected.get(hex(earlier)))) failures++;
    }
    expect(failures).toBe(0);
    expect(index.size).toBe(N);

    for (const id of ids) if (!sameLocation(index.get(id), expected.get(hex(id)))) failures++;
    expect(failures).toBe(0);
    for (const id of absent) if (index.has(id) || index.get(id) !== undefined) failures++;
    expect(failures).toBe(0);

    // entries(): every blob exactly once, ascending byte order of ids.
    let count = 0;
    let prev: Buffer | undefined;
    for (const [id, l] of index.entries()) {
      if (prev !== undefined && Buffer.compare(prev, id) >= 0) failures++;
      if (!sameLocation(l, expected.get(hex(id)))) failures++;
      prev = id;
      count++;
    }
    expect(failures).toBe(0);
    expect(count).toBe(N);

    // Lookups still work after the iteration merged the append region.
    for (let q = 0; q < 1000; q++) {
      const id = ids[rand() % N] as Buffer;
      if (!sameLocation(index.get(id), expected.get(hex(id)))) failures++;
    }
    expect(failures).toBe(0);

    // packIds(): the distinct referenced packs.
    const referenced = new Set([...expected.values()].map((l) => hex(l.packId)));
    const listed = index.packIds().map(hex);
    expect(listed.length).toBe(referenced.size);
    expect(new Set(listed)).toEqual(referenced);
    expect(index.packCount).toBe(referenced.size);

    // blobsInPack(): all blobs of a pack, by offset.
    for (const p of packs.slice(0, 5)) {
      const want = [...expected]
        .filter(([, l]) => l.packId.equals(p))
        .map(([h, l]) => ({ id: Buffer.from(h, 'hex'), ...l }))
        .sort((a, b) => a.offset - b.offset || Buffer.compare(a.id, b.id));
      expect(index.blobsInPack(p)).toEqual(want);
    }
    const [unknownPack] = randomIds(1);
    expect(index.blobsInPack(unknownPack as Buffer)).toEqual([]);
  });

  it('finds every id at every size around the merge thresholds', () => {
    const N = 20_000;
    const ids = randomIds(N);
    const [packId] = randomIds(1);
    const index = new BlobIndex();
    const checkpoints = new Set<number>();
    for (let t = 1024; t <= N; t += 1024) for (const d of [-1, 0, 1]) checkpoints.add(t + d);
    for (let i = 0; i < N; i++) {
      if (!index.add(ids[i] as Buffer, loc(packId as Buffer, i))) throw new Error(`id #${i} rejected`);
      if (checkpoints.has(i + 1)) {
        expect(index.size).toBe(i + 1);
        for (let j = 0; j <= i; j++) {
          const got = index.get(ids[j] as Buffer);
          if (got?.offset !== j) throw new Error(`id #${j} lost after ${i + 1} inserts (got ${JSON.stringify(got)})`);
        }
        expect(index.has(ids[i + 1] ?? Buffer.alloc(32, 0xff))).toBe(false);
      }
    }
  });

  it('rejects duplicates (first location wins), in both regions', () => {
    const index = new BlobIndex();
    const ids = randomIds(5000);
    const [p1, p2] = randomIds(2) as [Buffer, Buffer];
    for (const [i, id] of ids.entries()) expect(index.add(id, loc(p1, i))).toBe(true);
    // ids[0..] are merged into the main region by now; the last few are in the append region.
    let accepted = 0;
    for (const [i, id] of ids.entries()) {
      if (index.add(id, loc(p2, i + 1, { type: 'tree' }))) accepted++;
      if (index.add(Buffer.from(id), loc(p1, 7))) accepted++;
    }
    expect(accepted).toBe(0);
    expect(index.size).toBe(5000);
    expect(index.packIds()).toEqual([p1]); // a rejected add registers no pack
    expect(ids.filter((id, i) => !sameLocation(index.get(id), loc(p1, i)))).toEqual([]);
    expect(index.blobsInPack(p2)).toEqual([]);
  });

  it('orders and finds ids that share long prefixes or are sequential', () => {
    const index = new BlobIndex();
    const ids: Buffer[] = [];
    const prefix = Buffer.alloc(28, 0xab);
    // Same first 28 bytes, counter in the last 4: every id lands in one directory bucket.
    for (let i = 0; i < 3000; i++) {
      const id = Buffer.alloc(32);
      prefix.copy(id);
      id.writeUInt32BE((i * 2654435761) >>> 0, 28);
      ids.push(id);
    }
    // Same first word, random rest: ties in the radix sort.
    const rand = prng(99);
    for (let i = 0; i < 3000; i++) {
      const id = Buffer.alloc(32);
      id.writeUInt32BE(0x12345678, 0);
      for (let k = 4; k < 32; k += 4) id.writeUInt32BE(rand(), k);
      ids.push(id);
    }
    // Sequential big-endian counters (all-zero prefix).
    for (let i = 0; i < 3000; i++) {
      const id = Buffer.alloc(32);
      id.writeUInt32BE(i, 28);
      ids.push(id);
    }
    const [packId] = randomIds(1);
    expect(ids.filter((id, i) => !index.add(id, loc(packId as Buffer, i)))).toEqual([]);
    expect(index.size).toBe(ids.length);
    expect(ids.filter((id, i) => index.get(id)?.offset !== i)).toEqual([]);
    const absent = Buffer.from(ids[5] as Buffer);
    absent[31] = (absent[31] ?? 0) ^ 1;
    if (!ids.some((x) => x.equals(absent))) expect(index.has(absent)).toBe(false);
    const iterated = [...index.entries()].map(([id]) => id);
    expect(iterated).toEqual([...ids].sort((a, b) => Buffer.compare(a, b)));
  });

  it('preserves type, extreme values and is not affected by callers mutating buffers', () => {
    const index = new BlobIndex();
    const [id, packId, other] = randomIds(3) as [Buffer, Buffer, Buffer];
    const first: BlobLocation = { packId, type: 'tree', offset: 0xffff_fffe, length: 2, rawLength: 0xffff_ffff };
    const idCopy = Buffer.from(id);
    const packCopy = Buffer.from(packId);
    expect(index.add(id, first)).toBe(true);
    expect(index.add(other, { packId, type: 'data', offset: 0, length: 0xffff_ffff, rawLength: 0 })).toBe(true);
    id.fill(0);
    packId.fill(0);
    expect(index.has(id)).toBe(false);
    const got = index.get(idCopy);
    expect(got).toEqual({ ...first, packId: packCopy });
    got?.packId.fill(1);
    expect(index.get(idCopy)?.packId).toEqual(packCopy);
    expect(index.get(other)).toEqual({ packId: packCopy, type: 'data', offset: 0, length: 0xffff_ffff, rawLength: 0 });
    const [entryId] = [...index.entries()].map(([eid]) => eid);
    entryId?.fill(2);
    expect(index.has(idCopy)).toBe(true);
  });

  it('throws IndexArgumentError for malformed ids and locations', () => {
    const index = new BlobIndex();
    const [id, packId] = randomIds(2) as [Buffer, Buffer];
    expectArgumentError(() => index.add(id.subarray(0, 31), loc(packId)));
    expectArgumentError(() => index.add(id, loc(Buffer.alloc(33))));
    expectArgumentError(() => index.add(hex(id) as unknown as Buffer, loc(packId)));
    expectArgumentError(() => index.add(id, loc(packId, 0, { type: 'blob' as unknown as 'data' })));
    expectArgumentError(() => index.add(id, loc(packId, -1)));
    expectArgumentError(() => index.add(id, loc(packId, 1.5)));
    expectArgumentError(() => index.add(id, loc(packId, 0, { length: 0 })));
    expectArgumentError(() => index.add(id, loc(packId, 0, { length: 2 ** 32 })));
    expectArgumentError(() => index.add(id, loc(packId, 0, { rawLength: -3 })));
    expectArgumentError(() => index.add(id, loc(packId, 0xffff_ff00, { length: 0x100 + 1 })));
    expectArgumentError(() => index.has(Buffer.alloc(16)));
    expectArgumentError(() => index.get(Buffer.alloc(0)));
    expectArgumentError(() => index.blobsInPack(Buffer.alloc(31)));
    expect(index.size).toBe(0);
    expect(index.packCount).toBe(0);
    expect(index.add(id, loc(packId, 0xffff_ff00, { length: 0x100 }))).toBe(true);
  });

  it('throws if the index is modified during iteration', () => {
    const index = new BlobIndex();
    const ids = randomIds(10);
    const [packId] = randomIds(1) as [Buffer];
    for (const id of ids.slice(0, 5)) index.add(id, loc(packId));
    const it = index.entries();
    it.next();
    // A rejected duplicate does not modify the index.
    expect(index.add(ids[0] as Buffer, loc(packId))).toBe(false);
    it.next();
    index.add(ids[6] as Buffer, loc(packId));
    let caught: unknown;
    try {
      it.next();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(IndexConcurrentModificationError);
    expect((caught as IndexConcurrentModificationError).code).toBe('ARCA_ERR_INDEX_CONCURRENT_MODIFICATION');
    expect([...index].length).toBe(6);
  });

  it('stays compact', () => {
    const N = 300_000;
    const index = new BlobIndex();
    const ids = randomIds(N);
    const packs = randomIds(N / 16);
    const rand = prng(7);
    for (const id of ids) index.add(id, randomLocation(rand, packs));
    // 48 bytes/record + 2 bytes/blob of pack ids + small tables and chunk slack.
    expect(index.memoryBytes() / N).toBeLessThan(60);
  });
  it('groups blobs by pack, each group by offset, and refuses use after a change', () => {
    const rand = prng(7);
    const packIds = randomIds(5);
    const ids = randomIds(3000);
    const index = new BlobIndex();
    const want = new Map<string, Array<{ id: string; offset: number }>>();
    for (const id of ids) {
      const l = randomLocation(rand, packIds);
      index.add(id, l);
      const list = want.get(hex(l.packId)) ?? [];
      list.push({ id: hex(id), offset: l.offset });
      want.set(hex(l.packId), list);
    }
    const groups = index.groupByPack();
    expect(groups.packCount).toBe(want.size);
    let total = 0;
    for (let g = 0; g < groups.packCount; g++) {
      const blobs = groups.blobs(g);
      const expected = (want.get(hex(groups.packId(g))) ?? []).sort((a, b) => a.offset - b.offset || a.id.localeCompare(b.id));
      expect(groups.blobCount(g)).toBe(expected.length);
      expect(blobs.map((b) => ({ id: hex(b.id), offset: b.offset }))).toEqual(expected);
      for (const b of blobs) {
        const l = index.get(b.id);
        expect(l && { type: l.type, length: l.length, rawLength: l.rawLength }).toEqual({ type: b.type, length: b.length, rawLength: b.rawLength });
      }
      const scanned: Array<{ id: string; length: number }> = [];
      groups.scan(g, (id, length) => scanned.push({ id: hex(id), length }));
      const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : 1);
      expect(scanned.sort(byId)).toEqual(blobs.map((b) => ({ id: hex(b.id), length: b.length })).sort(byId));
      total += blobs.length;
    }
    expect(total).toBe(ids.length);

    index.add(ids[0] as Buffer, loc(packIds[0] as Buffer)); // Already there: no change.
    expect(groups.blobs(0).length).toBe(groups.blobCount(0));
    index.add(randomIds(1)[0] as Buffer, loc(packIds[0] as Buffer));
    expect(() => groups.blobs(0)).toThrow(IndexConcurrentModificationError);
    expect(() => groups.packId(0)).toThrow(IndexConcurrentModificationError);
    expect(() => { groups.scan(0, () => undefined); }).toThrow(IndexConcurrentModificationError);
  });
});
