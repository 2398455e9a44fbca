import { describe, expect, it } from 'vitest';
import {
  BlobIndex,
  decodeIndexFile,
  encodeIndexFile,
  forEachIndexPack,
  IndexArgumentError,
  IndexFileEncoder,
  IndexFormatError,
  indexFileSize,
  loadIndexFile,
  type IndexPack,
} from '../../repository/index/index.ts';
import { prng, randomIds } from './helpers.ts';

const HEADER = 20;
const SUPERSEDE = 32;
const PACK_HEADER = 36;
const RECORD = 45;

function samplePacks(): IndexPack[] {
  const [p1, p2, p3, a, b, c, d] = randomIds(7) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  return [
    {
      packId: p1,
      blobs: [
        { id: a, type: 'data', offset: 0, length: 1234, rawLength: 2000 },
        { id: b, type: 'tree', offset: 1234, length: 99, rawLength: 300 },
      ],
    },
    { packId: p2, blobs: [] },
    {
      packId: p3,
      blobs: [
        { id: c, type: 'data', offset: 0xffff_fffe, length: 2, rawLength: 0xffff_ffff },
        { id: d, type: 'tree', offset: 0, length: 0xffff_ffff, rawLength: 0 },
      ],
    },
  ];
}

/** Runs `fn`, returning what it threw (or undefined). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectFormatError(buf: Buffer, label: string): void {
  const e = thrown(() => decodeIndexFile(buf));
  if (!(e instanceof IndexFormatError)) {
    const got = e === undefined ? 'success' : e instanceof Error ? `${e.name}: ${e.message}` : typeof e;
    throw new Error(`${label}: expected IndexFormatError, got ${got}`);
  }
  expect(e.code).toBe('ARCA_ERR_INDEX_FORMAT');
}

describe('index file codec', () => {
  it('round-trips packs, blobs and supersedes', () => {
    const packs = samplePacks();
    const supersedes = randomIds(3);
    const buf = encodeIndexFile(packs, { supersedes });
    expect(buf.length).toBe(indexFileSize(3, 3, 4));
    expect(buf.length).toBe(HEADER + 3 * SUPERSEDE + 3 * PACK_HEADER + 4 * RECORD);
    expect(buf.subarray(0, 7).toString('ascii')).toBe('ARCAIDX');
    expect(buf[7]).toBe(1);
    expect(decodeIndexFile(buf)).toEqual({ packs, supersedes });
  });

  it('round-trips an empty index file', () => {
    const buf = encodeIndexFile([]);
    expect(buf.length).toBe(HEADER);
    expect(decodeIndexFile(buf)).toEqual({ packs: [], supersedes: [] });
  });

  it('round-trips a larger random file', () => {
    const rand = prng(4242);
    const packs: IndexPack[] = randomIds(50).map((packId) => ({
      packId,
      blobs: randomIds(rand() % 40).map((id) => ({
        id,
        type: rand() % 2 === 0 ? 'data' : 'tree',
        offset: rand() % 0x1000_0000,
        length: 1 + (rand() % 0x100_0000),
        rawLength: rand(),
      })),
    }));
    const decoded = decodeIndexFile(encodeIndexFile(packs));
    expect(decoded.packs).toEqual(packs);
  });

  it('returns ids that do not alias the input buffer', () => {
    const packs = samplePacks();
    const buf = encodeIndexFile(packs, { supersedes: randomIds(1) });
    const decoded = decodeIndexFile(buf);
    buf.fill(0);
    expect(decoded.packs).toEqual(packs);
  });

  it('rejects every truncation and any trailing bytes', () => {
    const buf = encodeIndexFile(samplePacks(), { supersedes: randomIds(2) });
    for (let len = 0; len < buf.length; len++) expectFormatError(buf.subarray(0, len), `truncated to ${len}`);
    expectFormatError(Buffer.concat([buf, Buffer.alloc(1)]), 'one trailing byte');
    expectFormatError(Buffer.concat([buf, buf]), 'doubled');
  });

  it('rejects any change to the header bytes', () => {
    const buf = encodeIndexFile(samplePacks(), { supersedes: randomIds(1) });
    for (let pos = 0; pos < HEADER; pos++) {
      for (let x = 1; x < 256; x++) {
        const bad = Buffer.from(buf);
        bad[pos] = (bad[pos] ?? 0) ^ x;
        expectFormatError(bad, `header byte ${pos} ^ ${x}`);
      }
    }
  });

  it('rejects any change to a per-pack blob count', () => {
    const buf = encodeIndexFile(samplePacks());
    // Pack count fields sit after each 32-byte pack id.
    const countOffsets = [HEADER + 32, HEADER + PACK_HEADER + 2 * RECORD + 32, HEADER + 2 * PACK_HEADER + 2 * RECORD + 32];
    expect(countOffsets.map((o) => buf.readUInt32LE(o))).toEqual([2, 0, 2]);
    for (const o of countOffsets) {
      for (let pos = o; pos < o + 4; pos++) {
        for (let x = 1; x < 256; x++) {
          const bad = Buffer.from(buf);
          bad[pos] = (bad[pos] ?? 0) ^ x;
          expectFormatError(bad, `count byte ${pos} ^ ${x}`);
        }
      }
    }
  });

  it('rejects unknown type codes, zero lengths and ranges past 4 GiB', () => {
    const buf = encodeIndexFile(samplePacks());
    const firstRecord = HEADER + PACK_HEADER;
    for (let t = 0; t < 256; t++) {
      const bad = Buffer.from(buf);
      bad[firstRecord] = t;
      if (t <= 1) expect(decodeIndexFile(bad).packs[0]?.blobs[0]?.type).toBe(t === 0 ? 'data' : 'tree');
      else expectFormatError(bad, `type code ${t}`);
    }
    const zeroLength = Buffer.from(buf);
    zeroLength.writeUInt32LE(0, firstRecord + 1 + 32 + 4);
    expectFormatError(zeroLength, 'zero length');
    const pastEnd = Buffer.from(buf);
    pastEnd.writeUInt32LE(0xffff_ff00, firstRecord + 1 + 32);
    pastEnd.writeUInt32LE(0x101, firstRecord + 1 + 32 + 4);
    expectFormatError(pastEnd, 'offset + length > 2^32');
  });

  it('explains unsupported versions and names the source file', () => {
    const buf = encodeIndexFile(samplePacks());
    buf[7] = 2;
    const e = thrown(() => decodeIndexFile(buf, { source: 'index/ab12' }));
    expect(e).toBeInstanceOf(IndexFormatError);
    expect((e as Error).message).toMatch(/index file index\/ab12/);
    expect((e as Error).message).toMatch(/version 2/);
    expect((e as Error).message).toMatch(/upgrade Arca/);
  });

  it('never crashes on random corruption or garbage', () => {
    const rand = prng(777);
    const buf = encodeIndexFile(samplePacks(), { supersedes: randomIds(2) });
    for (let iter = 0; iter < 5000; iter++) {
      const bad = Buffer.from(buf);
      const flips = 1 + (rand() % 3);
      for (let f = 0; f < flips; f++) {
        const pos = rand() % bad.length;
        bad[pos] = (bad[pos] ?? 0) ^ (1 + (rand() % 255));
      }
      const e = thrown(() => decodeIndexFile(bad));
      if (e !== undefined && !(e instanceof IndexFormatError)) expect(e).toBeInstanceOf(IndexFormatError);
    }
    for (let iter = 0; iter < 2000; iter++) {
      const len = rand() % 400;
      const garbage = Buffer.alloc(len);
      for (let i = 0; i < len; i++) garbage[i] = rand() & 0xff;
      if (len >= 8 && iter % 2 === 0) {
        garbage.write('ARCAIDX', 0, 'ascii');
        garbage[7] = 1;
      }
      const e = thrown(() => decodeIndexFile(garbage));
      if (e !== undefined && !(e instanceof IndexFormatError)) expect(e).toBeInstanceOf(IndexFormatError);
    }
  });

  it('rejects invalid input to the encoder with IndexArgumentError', () => {
    const [id, packId] = randomIds(2) as [Buffer, Buffer];
    const blob = { id, type: 'data' as const, offset: 0, length: 10, rawLength: 10 };
    const cases: Array<() => unknown> = [
      () => encodeIndexFile([{ packId: packId.subarray(1), blobs: [blob] }]),
      () => encodeIndexFile([{ packId, blobs: [{ ...blob, id: Buffer.alloc(31) }] }]),
      () => encodeIndexFile([{ packId, blobs: [{ ...blob, type: 'x' as unknown as 'data' }] }]),
      () => encodeIndexFile([{ packId, blobs: [{ ...blob, length: 0 }] }]),
      () => encodeIndexFile([{ packId, blobs: [{ ...blob, offset: 2 ** 32 }] }]),
      () => encodeIndexFile([{ packId, blobs: [blob] }], { supersedes: [Buffer.alloc(8)] }),
    ];
    for (const c of cases) {
      const e = thrown(c);
      expect(e).toBeInstanceOf(IndexArgumentError);
      expect((e as IndexArgumentError).code).toBe('ARCA_ERR_INDEX_ARGUMENT');
    }
  });

  it('loads index files into a BlobIndex, first location wins, nothing added from a bad file', () => {
    const packs = samplePacks();
    const supersedes = randomIds(1);
    const index = new BlobIndex();
    const r1 = loadIndexFile(encodeIndexFile(packs, { supersedes }), index);
    expect(r1).toEqual({ supersedes, packCount: 3, blobCount: 4, added: 4 });
    expect(index.size).toBe(4);
    for (const pack of packs) {
      for (const b of pack.blobs) {
        expect(index.get(b.id)).toEqual({
          packId: pack.packId,
          type: b.type,
          offset: b.offset,
          length: b.length,
          rawLength: b.rawLength,
        });
      }
    }
    // A second file re-listing a blob in another pack does not move it.
    const [newPack, newBlob] = randomIds(2) as [Buffer, Buffer];
    const first = packs[0]?.blobs[0];
    if (first === undefined) throw new Error('unreachable');
    const second = encodeIndexFile([
      { packId: newPack, blobs: [{ ...first, offset: 5 }, { ...first, id: newBlob }] },
    ]);
    expect(loadIndexFile(second, index).added).toBe(1);
    expect(index.get(first.id)?.packId).toEqual(packs[0]?.packId);
    expect(index.get(newBlob)?.packId).toEqual(newPack);

    const bad = encodeIndexFile([{ packId: newPack, blobs: randomIds(3).map((id) => ({ ...first, id })) }]);
    bad[bad.length - RECORD] = 9; // unknown type code in the last record
    const e = thrown(() => loadIndexFile(bad, index, { source: 'index/bad' }));
    expect(e).toBeInstanceOf(IndexFormatError);
    expect(index.size).toBe(5);
  });
  it('encodes pack by pack exactly as encodeIndexFile, and decodes pack by pack', () => {
    const packs = samplePacks();
    const supersedes = randomIds(2);
    const blobs = packs.reduce((sum, p) => sum + p.blobs.length, 0);
    const encoder = new IndexFileEncoder(packs.length, blobs, { supersedes });
    for (const pack of packs) encoder.addPack(pack.packId, pack.blobs);
    const buf = encoder.finish();
    expect(buf.equals(encodeIndexFile(packs, { supersedes }))).toBe(true);
    const visited: IndexPack[] = [];
    expect(forEachIndexPack(buf, (pack) => visited.push(pack))).toEqual(supersedes);
    expect(visited).toEqual(packs);
  });

  it('refuses to encode more or fewer packs and blobs than declared', () => {
    const [first, second] = samplePacks() as [IndexPack, IndexPack];
    const tooMany = new IndexFileEncoder(1, first.blobs.length);
    tooMany.addPack(first.packId, first.blobs);
    expect(thrown(() => { tooMany.addPack(second.packId, second.blobs); })).toBeInstanceOf(IndexArgumentError);
    const tooManyBlobs = new IndexFileEncoder(2, 1);
    expect(thrown(() => { tooManyBlobs.addPack(first.packId, first.blobs); })).toBeInstanceOf(IndexArgumentError);
    const tooFew = new IndexFileEncoder(2, first.blobs.length);
    tooFew.addPack(first.packId, first.blobs);
    expect(thrown(() => tooFew.finish())).toBeInstanceOf(IndexArgumentError);
  });
});
