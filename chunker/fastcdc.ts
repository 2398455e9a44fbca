import { ChunkerArgumentError } from './errors.ts';
import { gearTable } from './gear.ts';
import { validateChunkerParams, type ChunkerParams } from './params.ts';

/**
 * FastCDC content-defined chunking (Xia et al., "FastCDC", USENIX ATC 2016, and the 2020
 * TPDS follow-up), with:
 *
 * - a keyed gear table (see gear.ts), so boundaries depend on a secret;
 * - cut-point skipping: hashing starts `minSize` bytes into a chunk, no chunk is cut before
 *   `minSize` bytes (except the last one of the input), and a cut is forced at `maxSize`;
 * - normalized chunking, level 2: a strict mask `maskS` (log2(avg) + 2 one-bits) is used
 *   before the normal point and a loose mask `maskL` (log2(avg) - 2 one-bits) after it;
 * - the "rolling two bytes" loop: two bytes per iteration, the first through a table of
 *   gear values shifted left by one and tested against the mask shifted left by one.
 *
 * The hash is the 32-bit gear hash `h = (h << 1) + G[byte]`. Its bit k depends on the last
 * k + 1 bytes only; the masks take their one-bits at the top (ending at bit 30, so that the
 * shifted mask still fits 32 bits), giving a 31-byte window.
 *
 * The normal point: with cut-point skipping, putting it at `avgSize` would make the mean
 * chunk ~19% larger than `avgSize` with the default min = avg / 2. It is instead placed where
 * the expected chunk size on random data equals `avgSize` (about 0.78 * avg for the default
 * parameters), or at `minSize` when even that cannot bring the mean down to `avgSize`.
 *
 * Cut semantics: a chunk ends right after the byte whose hash matched the mask.
 */
export class FastCdc {
  readonly params: Readonly<ChunkerParams>;
  /** Chunk offset from which the loose mask is used. minSize <= normalSize <= maxSize. */
  readonly normalSize: number;
  /** Strict mask, used for chunk offsets in [minSize, normalSize). */
  readonly maskS: number;
  /** Loose mask, used for chunk offsets in [normalSize, maxSize). */
  readonly maskL: number;

  readonly #gear: Int32Array;
  readonly #gearLs: Int32Array;
  #lastHash = 0;

  constructor(key: Uint8Array, params: Partial<ChunkerParams> = {}) {
    const p = validateChunkerParams(params);
    this.params = Object.freeze(p);
    const bits = Math.log2(p.avgSize);
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
    this.normalSize = normalPoint(p, 2 ** -(bits + 2), 2 ** -(bits - 2));
    const table = gearTable(key);
    this.#gear = new Int32Array(table.buffer, table.byteOffset, 256);
    this.#gearLs = this.#gear.map((v) => v << 1);
  }

  /**
   * Finds the end of the chunk that starts at `buf[start]`, looking only at `buf[start, end)`.
   *
   * Returns the index `cut` (start < cut <= end) where the chunk ends (exclusive), or -1 when
   * the answer depends on bytes beyond `end` (more input is needed). With `eof` true, `end`
   * is the end of the input, so a non-empty range always yields a cut.
   */
  findCut(buf: Uint8Array, start: number, end: number, eof: boolean): number {
    checkRange(buf, start, end);
    return this.#scan(buf, start, end, 0, 0, eof);
  }

  /**
   * Continues a chunk whose first `offset` bytes were already scanned without finding a cut
   * (a call that returned -1 on them): `buf[from]` is byte number `offset` of the chunk and
   * `hash` is the value of `lastHash` after that call. Returns like `findCut`: the index
   * where the chunk ends (from < cut <= end; cut === from only with `eof` and an empty
   * range, i.e. the chunk is the bytes already seen), or -1. Lets a streaming caller resume
   * without re-hashing.
   */
  resumeCut(buf: Uint8Array, from: number, end: number, offset: number, hash: number, eof: boolean): number {
    checkRange(buf, from, end);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.params.maxSize) {
      throw new ChunkerArgumentError(`chunk offset ${offset} must be an integer in [0, maxSize).`);
    }
    return this.#scan(buf, from, end, offset, hash | 0, eof);
  }

  /** Rolling-hash state after the last `findCut`/`resumeCut` that returned -1. */
  get lastHash(): number {
    return this.#lastHash;
  }

  #scan(buf: Uint8Array, from: number, end: number, offset: number, hash: number, eof: boolean): number {
    const { minSize, maxSize } = this.params;
    const chunkEnd = from - offset + maxSize; // index where the chunk is forced to end
    const limit = end < chunkEnd ? end : chunkEnd;
    let i = from;
    let h = hash;
    if (offset <= minSize) {
      i = from + (minSize - offset); // cut-point skipping: hash from chunk offset minSize
      h = 0;
    }
    if (i < limit) {
      const normal = from - offset + this.normalSize;
      if (i < normal) {
        const e = normal < limit ? normal : limit;
        const cut = gearScan(buf, i, e, h, this.#gear, this.#gearLs, this.maskS, this.maskS << 1);
        if (cut >= 0) return cut;
        h = scanHash;
        i = e;
      }
      if (i < limit) {
        const cut = gearScan(buf, i, limit, h, this.#gear, this.#gearLs, this.maskL, this.maskL << 1);
        if (cut >= 0) return cut;
        h = scanHash;
      }
    }
    if (limit === chunkEnd) return limit; // forced cut at maxSize
    this.#lastHash = h;
    return eof && end > from - offset ? end : -1;
  }
}

/** Hash state left by the last gearScan that found no cut. */
let scanHash = 0;

/**
 * The hot loop: gear-hashes buf[i, e) starting from state h and returns the index just past
 * the first byte after which `(h & mask) === 0`, or -1 (leaving the state in `scanHash`).
 *
 * Two bytes per iteration: with `gls[b] = g[b] << 1` and `maskLs = mask << 1`, the first
 * byte is folded in as `(h << 2) + gls[b]`, which is the one-byte hash shifted left by one
 * (tested with the shifted mask); adding `g[b']` then gives exactly the one-byte hash after
 * the second byte. All arithmetic stays in int32 (`| 0`).
 *
 * Performance notes (V8): `i` is advanced before the tests so that the early returns carry
 * no arithmetic; when `return i + 1` had no type feedback yet (no cut seen while warming
 * up), TurboFan compiled the whole loop ~3x slower. The `?? 0` on typed-array reads (needed
 * for noUncheckedIndexedAccess) is free: in-bounds loads are typed as numbers.
 */
function gearScan(buf: Uint8Array, i: number, e: number, h: number, g: Int32Array, gls: Int32Array, mask: number, maskLs: number): number {
  const e2 = e - 1;
  while (i < e2) {
    h = ((h << 2) + (gls[buf[i++] ?? 0] ?? 0)) | 0;
    if ((h & maskLs) === 0) return i;
    h = (h + (g[buf[i++] ?? 0] ?? 0)) | 0;
    if ((h & mask) === 0) return i;
  }
  if (i < e) {
    h = ((h << 1) + (g[buf[i++] ?? 0] ?? 0)) | 0;
    if ((h & mask) === 0) return i;
  }
  scanHash = h;
  return -1;
}

/** A mask of `ones` contiguous one-bits ending at bit 30. */
function topMask(ones: number): number {
  return (((1 << ones) - 1) << (31 - ones)) | 0;
}

/**
 * The chunk offset `c` at which to switch from the strict to the loose mask so that the
 * expected chunk length on random data, min + E[len in strict region] + P(reach c) *
 * E[min(len in loose region, max - c)], equals avgSize (continuous approximation). The
 * expectation grows with c, so bisect.
 */
function normalPoint(p: ChunkerParams, rateS: number, rateL: number): number {
  const { minSize: m, avgSize: a, maxSize: M } = p;
  const expected = (c: number): number => {
    const reach = Math.exp(-rateS * (c - m));
    return m + (1 - reach) / rateS + (reach * (1 - Math.exp(-rateL * (M - c)))) / rateL;
  };
  if (expected(m) >= a) return m;
  let lo = m;
  let hi = M;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (expected(mid) < a) lo = mid;
    else hi = mid;
  }
  return lo;
}

function checkRange(buf: Uint8Array, start: number, end: number): void {
  if (!(buf instanceof Uint8Array)) throw new ChunkerArgumentError('the buffer to chunk must be a Uint8Array.');
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > buf.length) {
    throw new ChunkerArgumentError(`range [${start}, ${end}) is not within the buffer of ${buf.length} bytes.`);
  }
}
