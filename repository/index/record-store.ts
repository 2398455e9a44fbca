import { IndexInternalError } from './errors.ts';

/**
 * Growable storage for fixed-size records made of 32-bit words.
 *
 * Records live in chunks of `2^shift` records each, so growing never copies
 * (or transiently doubles) the whole data set and the unused tail is at most
 * one chunk. Only the first chunk grows geometrically (doubling, copying) up
 * to the full chunk size, so small stores stay small.
 *
 * Record `i` is at `chunks[i >>> shift]`, word offset `(i & mask) * wordsPerRecord`.
 * Callers index `chunks` directly on hot paths; they must not keep a chunk
 * reference across `ensureCapacity` (the first chunk may be replaced).
 */
export class RecordStore {
  readonly wordsPerRecord: number;
  readonly shift: number;
  readonly mask: number;
  readonly chunkRecords: number;
  readonly chunks: Uint32Array[] = [];
  private cap = 0;
  private readonly initialRecords: number;

  constructor(wordsPerRecord: number, shift: number, initialRecords = 64) {
    this.wordsPerRecord = wordsPerRecord;
    this.shift = shift;
    this.chunkRecords = 2 ** shift;
    this.mask = this.chunkRecords - 1;
    this.initialRecords = Math.min(this.chunkRecords, Math.max(1, initialRecords));
  }

  /** Number of records that fit without allocating. */
  get capacity(): number {
    return this.cap;
  }

  /** Bytes held by the chunks. */
  get byteLength(): number {
    let total = 0;
    for (const c of this.chunks) total += c.byteLength;
    return total;
  }

  /** Makes room for at least `records` records. */
  ensureCapacity(records: number): void {
    const w = this.wordsPerRecord;
    const full = this.chunkRecords;
    while (this.cap < records) {
      const first = this.chunks[0];
      if (first === undefined) {
        const size = Math.min(full, Math.max(this.initialRecords, records));
        this.chunks.push(new Uint32Array(size * w));
        this.cap = size;
      } else if (this.chunks.length === 1 && this.cap < full) {
        const size = Math.min(full, Math.max(this.cap * 2, records));
        const grown = new Uint32Array(size * w);
        grown.set(first);
        this.chunks[0] = grown;
        this.cap = size;
      } else {
        this.chunks.push(new Uint32Array(full * w));
        this.cap += full;
      }
    }
  }

  /**
   * Moves `count` records from index `src` to index `dst` (memmove semantics;
   * requires `dst >= src`, both ranges within capacity).
   */
  moveUp(src: number, dst: number, count: number): void {
    const w = this.wordsPerRecord;
    const shift = this.shift;
    const mask = this.mask;
    const chunks = this.chunks;
    let s = src + count; // exclusive end of the part still to move
    let d = dst + count;
    let left = count;
    while (left > 0) {
      const sInChunk = ((s - 1) & mask) + 1; // records of s's chunk before s
      const dInChunk = ((d - 1) & mask) + 1;
      const k = Math.min(left, sInChunk, dInChunk);
      const sc = chunks[(s - 1) >>> shift];
      const dc = chunks[(d - 1) >>> shift];
      if (sc === undefined || dc === undefined) {
        throw new IndexInternalError(`RecordStore.moveUp(${src}, ${dst}, ${count}) exceeds capacity ${this.cap}; this is a bug in Arca.`);
      }
      const sStart = (sInChunk - k) * w;
      const dStart = (dInChunk - k) * w;
      if (sc === dc) sc.copyWithin(dStart, sStart, sStart + k * w);
      else dc.set(sc.subarray(sStart, sStart + k * w), dStart);
      s -= k;
      d -= k;
      left -= k;
    }
  }
}
