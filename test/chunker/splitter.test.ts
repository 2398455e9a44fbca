import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkSplitter, ChunkerArgumentError, FastCdc, chunkBuffer, chunkStream, type ChunkerParams } from '../../chunker/index.ts';
import { KiB, MiB, lengths, randomData, testKey, textData } from './helpers.ts';

const SMALL: ChunkerParams = { minSize: 2 * KiB, avgSize: 8 * KiB, maxSize: 64 * KiB };
const TINY: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

/** Splits `data` into pieces whose sizes come from `sizes` (cycled). */
function pieces(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let k = 0;
  for (let pos = 0; pos < data.length; k++) {
    const n = Math.min(sizes[k % sizes.length] ?? 1, data.length - pos);
    out.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** Pseudo-random piece sizes in [0, max], deterministic. */
function randomSizes(count: number, max: number, seed: number): number[] {
  const r = randomData(count * 4, seed);
  return Array.from({ length: count }, (_, i) => r.readUInt32LE(i * 4) % (max + 1));
}

/**
 * Pushes each piece through a splitter, copying each returned chunk immediately and then
 * scribbling over the piece (as a caller reusing its read buffer would), so that a chunk
 * wrongly aliasing an old piece would be caught.
 */
function splitAll(cdc: FastCdc, input: readonly Buffer[]): Buffer[] {
  const splitter = new ChunkSplitter(cdc);
  const out: Buffer[] = [];
  for (const piece of input) {
    const scratch = Buffer.from(piece);
    for (const chunk of splitter.push(scratch)) out.push(Buffer.from(chunk));
    scratch.fill(0xee);
    expect(splitter.pendingBytes).toBeLessThan(cdc.params.maxSize);
  }
  const last = splitter.finish();
  if (last !== undefined) out.push(Buffer.from(last));
  return out;
}

async function collect(source: AsyncIterable<Uint8Array>, cdc: FastCdc): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunkStream(source, cdc)) out.push(chunk);
  return out;
}

async function* asyncPieces(input: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const piece of input) {
    await Promise.resolve();
    yield piece;
  }
}

function expectSameChunks(actual: readonly Buffer[], expected: readonly Buffer[]): void {
  // Same lengths and same concatenation means the same chunks.
  expect(lengths(actual)).toEqual(lengths(expected));
  expect(Buffer.concat(actual).equals(Buffer.concat(expected))).toBe(true);
}

describe('ChunkSplitter', () => {
  it('gives exactly the one-shot chunks for 1-byte pushes (small input)', () => {
    const cdc = new FastCdc(testKey(1), TINY);
    const data = randomData(48 * KiB, 101);
    const expected = chunkBuffer(cdc, data);
    expect(expected.length).toBeGreaterThan(100);
    expectSameChunks(splitAll(cdc, pieces(data, [1])), expected);
  });

  it('gives exactly the one-shot chunks for 4 KiB, 1 MiB and random-size pushes', () => {
    for (const params of [SMALL, TINY, { minSize: 64 * KiB, avgSize: 256 * KiB, maxSize: 1 * MiB }]) {
      const cdc = new FastCdc(testKey(2), params);
      const data = randomData(Math.min(12 * MiB, 2000 * params.avgSize) + 123, 102);
      const expected = chunkBuffer(cdc, data);
      for (const sizes of [[4 * KiB], [MiB], [params.maxSize], [params.minSize], randomSizes(1000, 3 * params.avgSize, 103), [7, 0, 65_537, 1, 300_000]]) {
        expectSameChunks(splitAll(cdc, pieces(data, sizes)), expected);
      }
    }
  });

  it('gives exactly the one-shot chunks with the default parameters', () => {
    const cdc = new FastCdc(testKey(3));
    for (const data of [randomData(40 * MiB + 5, 104), textData(24 * MiB, 105)]) {
      const expected = chunkBuffer(cdc, data);
      expect(expected.length).toBeGreaterThan(10);
      for (const sizes of [[4 * KiB], [64 * KiB], [MiB], [16 * MiB], randomSizes(200, 3 * MiB, 106)]) {
        expectSameChunks(splitAll(cdc, pieces(data, sizes)), expected);
      }
    }
  });

  it('gives the one-shot chunks when pushes end exactly on chunk boundaries', () => {
    const cdc = new FastCdc(testKey(4), SMALL);
    const data = randomData(4 * MiB, 107);
    const expected = chunkBuffer(cdc, data);
    expectSameChunks(splitAll(cdc, expected.map((c) => Buffer.from(c))), expected);
  });

  it('returns views of the pushed buffer for chunks inside it, copies otherwise', () => {
    const cdc = new FastCdc(testKey(5), SMALL);
    const data = randomData(2 * MiB, 108);
    const splitter = new ChunkSplitter(cdc);
    const first = splitter.push(data.subarray(0, 1000)); // shorter than minSize: all carried over
    expect(first).toEqual([]);
    expect(splitter.pendingBytes).toBe(1000);
    const rest = data.subarray(1000);
    const chunks = splitter.push(rest);
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks[0]?.buffer).not.toBe(data.buffer); // spans both pushes: a fresh buffer
    for (const c of chunks.slice(1)) expect(c.buffer).toBe(data.buffer); // views
    expect(splitter.pendingBytes).toBeLessThan(SMALL.maxSize);
    const last = splitter.finish();
    expect(Buffer.concat([...chunks, last ?? Buffer.alloc(0)]).equals(data)).toBe(true);
  });

  it('accepts plain Uint8Arrays and empty pushes', () => {
    const cdc = new FastCdc(testKey(6), SMALL);
    const data = randomData(MiB, 109);
    const splitter = new ChunkSplitter(cdc);
    const out: Buffer[] = [];
    for (const p of pieces(data, [3000, 0, 70_000])) {
      out.push(...splitter.push(new Uint8Array(p)).map((c) => Buffer.from(c)));
      out.push(...splitter.push(new Uint8Array(0)));
    }
    const last = splitter.finish();
    if (last !== undefined) out.push(last);
    expectSameChunks(out, chunkBuffer(cdc, data));
    expect(() => splitter.push('abc' as unknown as Uint8Array)).toThrow(ChunkerArgumentError);
  });

  it('gives nothing for empty input, and finish() resets for a new input', () => {
    const cdc = new FastCdc(testKey(7), SMALL);
    const splitter = new ChunkSplitter(cdc);
    expect(splitter.finish()).toBeUndefined();
    expect(splitter.push(Buffer.alloc(0))).toEqual([]);
    expect(splitter.finish()).toBeUndefined();
    const data = randomData(300 * KiB, 110);
    const first: Buffer[] = splitter.push(data).map((c) => Buffer.from(c));
    const last = splitter.finish();
    if (last !== undefined) first.push(last);
    expectSameChunks(first, chunkBuffer(cdc, data));
    expect(splitter.pendingBytes).toBe(0);
    expect(splitter.finish()).toBeUndefined();
    expect(lengths(splitter.push(Buffer.alloc(10)))).toEqual([]);
    expect(splitter.finish()?.length).toBe(10);
  });
});

describe('chunkStream', () => {
  it('yields nothing for an empty source', async () => {
    const cdc = new FastCdc(testKey(8));
    expect(await collect(asyncPieces([]), cdc)).toEqual([]);
    expect(await collect(asyncPieces([Buffer.alloc(0), new Uint8Array(0)]), cdc)).toEqual([]);
    expect(await collect(Readable.from([], { objectMode: true }) as AsyncIterable<Uint8Array>, cdc)).toEqual([]);
  });

  it('yields the one-shot chunks whatever the read size', async () => {
    const cdc = new FastCdc(testKey(9), SMALL);
    const data = randomData(6 * MiB + 99, 111);
    const expected = chunkBuffer(cdc, data);
    for (const sizes of [[4 * KiB], [MiB], randomSizes(500, 40 * KiB, 112)]) {
      expectSameChunks(await collect(asyncPieces(pieces(data, sizes)), cdc), expected);
    }
    const readable = Readable.from(pieces(data, [16 * KiB]), { objectMode: true }) as AsyncIterable<Uint8Array>;
    expectSameChunks(await collect(readable, cdc), expected);
  });

  it('yields a single chunk for input shorter than minSize, split across reads', async () => {
    const cdc = new FastCdc(testKey(10));
    const data = randomData(100 * KiB, 113);
    const chunks = await collect(asyncPieces(pieces(data, [1, 10, 4096])), cdc);
    expect(chunks.length).toBe(1);
    expect(chunks[0]?.equals(data)).toBe(true);
  });
});
