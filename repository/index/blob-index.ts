/**
 * In-memory index from blob id to blob location, built for tens of millions of
 * blobs at about 51 bytes each (measured: 51.1 B/blob at 10 M blobs over
 * 625 k packs, see bench/index-memory.ts).
 *
 * Layout
 * ------
 * Every blob is one fixed 12-word (48-byte) record in a chunked `RecordStore`:
 *
 *   words 0..7  blob id as eight big-endian uint32 words (so comparing words
 *               in order is the same as comparing the id bytes)
 *   word  8     pack number * 2 + type bit (0 = data, 1 = tree)
 *   word  9     offset, word 10 length, word 11 rawLength
 *
 * Records `[0, mainCount)` (the main region) are sorted by id. Records
 * `[mainCount, mainCount + appendCount)` (the append region) are in insertion
 * order and are found through an open-addressing hash table of record
 * numbers tagged with fingerprints. When the append region reaches
 * `max(1024, mainCount / 16)` records it is radix-sorted and merged into the
 * main region in place, from the back (no second copy of the main region is
 * ever made). Over the life of the index each record is moved about 16 times
 * in bulk (memmove), so an insert costs amortised O(1) moves plus an
 * O(log n) search.
 *
 * Main-region lookups use a directory of uint32 start positions indexed by the
 * top bits of the first id word (32-64 records per bucket, ~0.1 B/blob). Ids
 * are uniformly distributed hashes, so the position inside the bucket is
 * guessed by interpolation and refined by walking neighbouring records; skewed
 * buckets fall back to binary search, so the worst case stays O(log n).
 *
 * Pack ids are stored once, as 8-word records in a second `RecordStore`, and
 * found through an open-addressing hash table of pack numbers.
 *
 * Memory at 10 M blobs over 625 k packs: 48.1 B/blob of records (including
 * the unused tail of the last chunk), 2.0 B/blob of pack ids, 0.4 B/blob each
 * for the pack hash and the append hash, 0.1 B/blob for the directory.
 * A merge transiently allocates about 64 bytes per append-region record
 * (sorted copy plus radix-sort buffers), i.e. at most ~4 B per indexed blob.
 *
 * Lookups (`has`, `get`) do not allocate except for the returned location.
 * Not thread-safe; instances must not be shared between workers.
 */
import { IndexCapacityError, IndexConcurrentModificationError } from './errors.ts';
import { RecordStore } from './record-store.ts';
import { checkId, checkLocationFields, type BlobLocation, type BlobType } from './types.ts';
import { hashIdWords, ID_WORDS } from './id-words.ts';
import type { IndexBlob } from './types.ts';

/** A blob location together with the blob's id. */
export type BlobEntry = { id: Buffer } & BlobLocation;

/**
 * The index's blobs grouped by pack, for maintenance that works one pack at a time (prune), so
 * that no list of every blob is ever built. Pack numbers run from 0 to `packCount - 1`, in the
 * order the packs were first added. Valid until the index is next modified: using it after
 * that throws `IndexConcurrentModificationError`.
 */
export interface PackGroups {
  readonly packCount: number;
  packId(pack: number): Buffer;
  blobCount(pack: number): number;
  /** The blobs of `pack`, sorted by offset (fresh objects; the caller may keep them). */
  blobs(pack: number): IndexBlob[];
  /**
   * Calls `visit` with the ID and stored length of each blob of `pack`, in no particular order,
   * allocating nothing: the ID is a scratch buffer, valid only during the call.
   */
  scan(pack: number, visit: (id: Buffer, length: number) => void): void;
}

const REC_WORDS = 12;
const W_PACK = 8;
const W_OFFSET = 9;
const W_LENGTH = 10;
const W_RAW = 11;
/** 2^15 records (1.5 MiB) per chunk of blob records. */
const REC_SHIFT = 15;
const REC_MASK = 2 ** REC_SHIFT - 1;

const PACK_WORDS = 8;
/** 2^13 pack ids (256 KiB) per chunk of pack ids. */
const PACK_SHIFT = 13;
const PACK_MASK = 2 ** PACK_SHIFT - 1;

/** Smallest append region that triggers a merge. */
const MIN_APPEND = 1024;
/** The append region is merged when it reaches mainCount >>> APPEND_SHIFT records. */
const APPEND_SHIFT = 4;
/** Hash tables are sized so at most 7 of every 10 slots are used. */
const LOAD_NUM = 7;
const LOAD_DEN = 10;

/** Buckets larger than this are searched by interpolation first. */
const INTERPOLATE_MIN = 8;
/** Records walked after the interpolation guess before falling back to binary search. */
const WALK_STEPS = 8;
/** The directory has about 2^DIR_SPARSENESS main records per bucket. */
const DIR_SPARSENESS = 5;

/** Pack numbers share word 8 with the type bit. */
const MAX_PACKS = 0x7fff_ffff;
/** Record numbers and directory entries are uint32. */
const MAX_BLOBS = 0xffff_fffe;

const EMPTY = new Uint32Array(0);
/** Scratch: the id being looked up or added (module-level so lookups don't allocate). */
const KEY = new Uint32Array(ID_WORDS);
/** Scratch: the pack id being interned. */
const PACK_KEY = new Uint32Array(ID_WORDS);

function loadWords(id: Buffer, out: Uint32Array): void {
  for (let k = 0; k < ID_WORDS; k++) out[k] = id.readUInt32BE(k * 4);
}

function writeId(words: Uint32Array, base: number, out = Buffer.allocUnsafe(ID_WORDS * 4)): Buffer {
  for (let k = 0; k < ID_WORDS; k++) out.writeUInt32BE(words[base + k] ?? 0, k * 4);
  return out;
}

/** A second, independent-enough hash whose high bits serve as a fingerprint. */
function fingerprint(h: number): number {
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
}

/** Bits needed to store append record numbers 1..threshold. */
function indexBits(threshold: number): number {
  return 32 - Math.clz32(threshold);
}

/** Orders blobs by their place in the pack (and equal offsets, which only damage makes, by id). */
function byOffset(x: IndexBlob, y: IndexBlob): number {
  return x.offset - y.offset || Buffer.compare(x.id, y.id);
}

/** Compares two 8-word ids; returns <0, 0 or >0. */
function compareWords(a: Uint32Array, ab: number, b: Uint32Array, bb: number): number {
  for (let k = 0; k < ID_WORDS; k++) {
    const x = a[ab + k] ?? 0;
    const y = b[bb + k] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Smallest power of two >= max(16, ceil(count * LOAD_DEN / LOAD_NUM) + 1). */
function hashCapacity(count: number): number {
  const need = Math.max(16, Math.ceil((count * LOAD_DEN) / LOAD_NUM) + 1);
  return 2 ** Math.ceil(Math.log2(need));
}

/** Directory bits for a main region of n records: 2^DIR_SPARSENESS to 2^(DIR_SPARSENESS+1) records per bucket. */
function directoryBits(n: number): number {
  const log2 = n <= 1 ? 0 : 31 - Math.clz32(n);
  return Math.min(26, Math.max(1, log2 - DIR_SPARSENESS));
}

/**
 * LSD radix sort of `vals` by the uint32 `keys` (3 passes of 11 bits).
 * Returns the sorted keys and values (the inputs are clobbered).
 */
function radixSortPairs(keys: Uint32Array, vals: Uint32Array): { keys: Uint32Array; vals: Uint32Array } {
  const m = keys.length;
  let kSrc: Uint32Array = keys;
  let vSrc: Uint32Array = vals;
  let kDst: Uint32Array = new Uint32Array(m);
  let vDst: Uint32Array = new Uint32Array(m);
  const counts = new Uint32Array(2048);
  for (let shift = 0; shift < 32; shift += 11) {
    counts.fill(0);
    for (let i = 0; i < m; i++) {
      const d = ((kSrc[i] ?? 0) >>> shift) & 2047;
      counts[d] = (counts[d] ?? 0) + 1;
    }
    let sum = 0;
    for (let d = 0; d < 2048; d++) {
      const c = counts[d] ?? 0;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < m; i++) {
      const k = kSrc[i] ?? 0;
      const d = (k >>> shift) & 2047;
      const pos = counts[d] ?? 0;
      counts[d] = pos + 1;
      kDst[pos] = k;
      vDst[pos] = vSrc[i] ?? 0;
    }
    [kSrc, kDst] = [kDst, kSrc];
    [vSrc, vDst] = [vDst, vSrc];
  }
  return { keys: kSrc, vals: vSrc };
}

/**
 * Compact map from 32-byte blob id to `BlobLocation`. The first location
 * added for an id wins; later `add`s of the same id are ignored.
 */
export class BlobIndex implements Iterable<[Buffer, BlobLocation]> {
  private readonly records = new RecordStore(REC_WORDS, REC_SHIFT);
  private mainCount = 0;
  private appendCount = 0;
  private mergeThreshold = MIN_APPEND;
  /**
   * Append-region hash. A slot holds `fingerprint << idxBits | (append record
   * number + 1)`, 0 = empty; the fingerprint (the remaining high bits of a
   * second hash of the id) lets probes skip non-matching records without
   * touching them.
   */
  private appendHash = new Uint32Array(hashCapacity(MIN_APPEND));
  private appendMask = this.appendHash.length - 1;
  private appendIdxBits = indexBits(MIN_APPEND);
  /** dir[k] = number of main records whose first word's top `dirBits` bits are < k. */
  private dir = new Uint32Array(2 ** directoryBits(0) + 1);
  private dirBits = directoryBits(0);
  private dirShift = 32 - this.dirBits;

  private readonly packs = new RecordStore(PACK_WORDS, PACK_SHIFT, 16);
  private packCountValue = 0;
  /** Pack hash: slot -> (pack number + 1); 0 = empty. */
  private packHash = new Uint32Array(hashCapacity(0));
  private packMask = this.packHash.length - 1;

  /** Bumped on every mutation (add or merge); iterators check it. */
  private version = 0;

  /** Number of blobs in the index. */
  get size(): number {
    return this.mainCount + this.appendCount;
  }

  /** Number of distinct packs referenced by the index. */
  get packCount(): number {
    return this.packCountValue;
  }

  /** Bytes of memory held by the index's arrays (excludes small JS object overhead). */
  memoryBytes(): number {
    return (
      this.records.byteLength +
      this.packs.byteLength +
      this.appendHash.byteLength +
      this.dir.byteLength +
      this.packHash.byteLength
    );
  }

  /**
   * Adds a blob. Returns false (and changes nothing) if the id is already in
   * the index: the first location recorded for an id wins.
   * Throws `IndexArgumentError` for a malformed id or location.
   */
  add(id: Buffer, loc: BlobLocation): boolean {
    // Read the location once: nothing below may re-enter user code while KEY is live.
    const { packId, type, offset, length, rawLength } = loc;
    checkId(id, 'blob id');
    checkId(packId, 'pack id');
    checkLocationFields({ type, offset, length, rawLength }, 'blob location');
    loadWords(id, KEY);
    if (this.findAppend(KEY) >= 0 || this.findMain(KEY) >= 0) return false;
    const i = this.mainCount + this.appendCount;
    if (i >= MAX_BLOBS) {
      throw new IndexCapacityError(
        `the blob index is full (${i} blobs, the maximum); split the data across several repositories.`,
      );
    }
    const packNo = this.internPack(packId);
    this.records.ensureCapacity(i + 1);
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    const b = (i & REC_MASK) * REC_WORDS;
    for (let k = 0; k < ID_WORDS; k++) c[b + k] = KEY[k] ?? 0;
    c[b + W_PACK] = packNo * 2 + (type === 'tree' ? 1 : 0);
    c[b + W_OFFSET] = offset;
    c[b + W_LENGTH] = length;
    c[b + W_RAW] = rawLength;

    const hash = this.appendHash;
    const mask = this.appendMask;
    const hw = hashIdWords(KEY, 0);
    let h = hw & mask;
    while (hash[h] !== 0) h = (h + 1) & mask;
    this.appendCount++;
    hash[h] = (fingerprint(hw) >>> this.appendIdxBits) * 2 ** this.appendIdxBits + this.appendCount;
    this.version++;
    if (this.appendCount >= this.mergeThreshold) this.merge();
    return true;
  }

  /** True if the index holds `id`. Does not allocate. */
  has(id: Buffer): boolean {
    checkId(id, 'blob id');
    loadWords(id, KEY);
    return this.findAppend(KEY) >= 0 || this.findMain(KEY) >= 0;
  }

  /** The location of `id`, or undefined. Allocates only the returned object. */
  get(id: Buffer): BlobLocation | undefined {
    checkId(id, 'blob id');
    loadWords(id, KEY);
    let i = this.findAppend(KEY);
    if (i < 0) i = this.findMain(KEY);
    return i < 0 ? undefined : this.locationAt(i);
  }

  /**
   * Yields every blob as `[id, location]` in ascending byte order of the ids.
   * Starting the iteration merges the append region (O(n)). Adding to the
   * index while an iterator is in use makes that iterator throw
   * `IndexConcurrentModificationError`.
   */
  *entries(): IterableIterator<[Buffer, BlobLocation]> {
    this.merge();
    const version = this.version;
    for (let i = 0; i < this.mainCount; i++) {
      yield [this.idAt(i), this.locationAt(i)];
      if (this.version !== version) {
        throw new IndexConcurrentModificationError(
          'the blob index was modified while being iterated; finish the iteration (or copy the entries) before adding blobs.',
        );
      }
    }
  }

  /** Same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[Buffer, BlobLocation]> {
    return this.entries();
  }

  /** The distinct pack ids referenced by the index, in the order first added. */
  packIds(): Buffer[] {
    const out: Buffer[] = [];
    for (let p = 0; p < this.packCountValue; p++) out.push(this.packIdAt(p));
    return out;
  }

  /**
   * All blobs stored in `packId`, sorted by offset. O(size) scan; meant for
   * maintenance (prune, repack), not for hot paths.
   */
  blobsInPack(packId: Buffer): BlobEntry[] {
    checkId(packId, 'pack id');
    const p = this.findPack(packId);
    if (p < 0) return [];
    const out: BlobEntry[] = [];
    const total = this.mainCount + this.appendCount;
    for (let i = 0; i < total; i++) {
      const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
      const b = (i & REC_MASK) * REC_WORDS;
      if ((c[b + W_PACK] ?? 0) >>> 1 === p) out.push({ id: this.idAt(i), ...this.locationAt(i) });
    }
    return out.sort(byOffset);
  }

  /**
   * Groups the blobs by pack (merging the append region first): O(size) time, and 4 bytes per
   * blob for as long as the groups are in use.
   */
  groupByPack(): PackGroups {
    this.merge();
    const version = this.version;
    const n = this.mainCount;
    const packCount = this.packCountValue;
    // Counting sort of the record numbers by pack: starts[p]..starts[p+1] index `order`.
    const starts = new Uint32Array(packCount + 1);
    for (let i = 0; i < n; i++) {
      const p = this.packAt(i);
      starts[p + 1] = (starts[p + 1] ?? 0) + 1;
    }
    for (let p = 0; p < packCount; p++) starts[p + 1] = (starts[p + 1] ?? 0) + (starts[p] ?? 0);
    const next = starts.slice(0, packCount);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const p = this.packAt(i);
      const at = next[p] ?? 0;
      order[at] = i;
      next[p] = at + 1;
    }
    const checkUnchanged = (): void => {
      if (this.version !== version) {
        throw new IndexConcurrentModificationError(
          'the blob index was modified while its pack groups were in use; group it again after adding blobs.',
        );
      }
    };
    return {
      packCount,
      packId: (pack) => {
        checkUnchanged();
        return this.packIdAt(pack);
      },
      blobCount: (pack) => (starts[pack + 1] ?? 0) - (starts[pack] ?? 0),
      blobs: (pack) => {
        checkUnchanged();
        const out: IndexBlob[] = [];
        for (let j = starts[pack] ?? 0, end = starts[pack + 1] ?? 0; j < end; j++) out.push(this.blobAt(order[j] ?? 0));
        return out.sort(byOffset);
      },
      scan: (pack, visit) => {
        checkUnchanged();
        const id = Buffer.allocUnsafe(ID_WORDS * 4);
        for (let j = starts[pack] ?? 0, end = starts[pack + 1] ?? 0; j < end; j++) {
          const i = order[j] ?? 0;
          const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
          const b = (i & REC_MASK) * REC_WORDS;
          visit(writeId(c, b, id), c[b + W_LENGTH] ?? 0);
        }
      },
    };
  }

  // ---- lookups ------------------------------------------------------------

  /** Compares record `i`'s id with the 8-word key at `kw[kb]`. */
  private compareAt(i: number, kw: Uint32Array, kb: number): number {
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    return compareWords(c, (i & REC_MASK) * REC_WORDS, kw, kb);
  }

  /**
   * First main-region position in [0, limit) whose id is >= the key (or
   * `limit`). The directory narrows the search to one bucket; since ids are
   * uniformly distributed hashes, the position inside the bucket is first
   * guessed by interpolation and refined by walking a few neighbouring
   * records, with binary search as the fallback for skewed buckets.
   */
  private lowerBound(kw: Uint32Array, kb: number, limit: number): number {
    const k0 = kw[kb] ?? 0;
    const shift = this.dirShift;
    const bucket = k0 >>> shift;
    const start = this.dir[bucket] ?? 0;
    const end = this.dir[bucket + 1] ?? 0;
    let lo = Math.min(start, limit);
    let hi = Math.min(end, limit);
    if (hi - lo > INTERPOLATE_MIN) {
      const width = 2 ** shift;
      let g = start + Math.floor(((k0 - bucket * width) / width) * (end - start));
      if (g < lo) g = lo;
      if (g >= hi) g = hi - 1;
      if (this.compareAt(g, kw, kb) < 0) {
        lo = g + 1;
        for (let step = 0; step < WALK_STEPS && lo < hi; step++) {
          if (this.compareAt(lo, kw, kb) >= 0) return lo;
          lo++;
        }
      } else {
        hi = g;
        for (let step = 0; step < WALK_STEPS && hi > lo; step++) {
          if (this.compareAt(hi - 1, kw, kb) < 0) return hi;
          hi--;
        }
      }
    }
    while (lo < hi) {
      const mid = lo + ((hi - lo) >>> 1);
      if (this.compareAt(mid, kw, kb) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private findMain(kw: Uint32Array): number {
    const n = this.mainCount;
    const pos = this.lowerBound(kw, 0, n);
    return pos < n && this.compareAt(pos, kw, 0) === 0 ? pos : -1;
  }

  private findAppend(kw: Uint32Array): number {
    if (this.appendCount === 0) return -1;
    const hash = this.appendHash;
    const mask = this.appendMask;
    const bits = this.appendIdxBits;
    const idxMask = 2 ** bits - 1;
    const hw = hashIdWords(kw, 0);
    const fp = fingerprint(hw) >>> bits;
    let h = hw & mask;
    for (;;) {
      const v = hash[h] ?? 0;
      if (v === 0) return -1;
      if (v >>> bits === fp) {
        const i = this.mainCount + (v & idxMask) - 1;
        if (this.compareAt(i, kw, 0) === 0) return i;
      }
      h = (h + 1) & mask;
    }
  }

  private idAt(i: number): Buffer {
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    return writeId(c, (i & REC_MASK) * REC_WORDS);
  }

  private packAt(i: number): number {
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    return (c[(i & REC_MASK) * REC_WORDS + W_PACK] ?? 0) >>> 1;
  }

  /** Record `i` without its pack id (the caller knows it). */
  private blobAt(i: number): IndexBlob {
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    const b = (i & REC_MASK) * REC_WORDS;
    return {
      id: writeId(c, b),
      type: ((c[b + W_PACK] ?? 0) & 1) === 1 ? 'tree' : 'data',
      offset: c[b + W_OFFSET] ?? 0,
      length: c[b + W_LENGTH] ?? 0,
      rawLength: c[b + W_RAW] ?? 0,
    };
  }

  private locationAt(i: number): BlobLocation {
    const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
    const b = (i & REC_MASK) * REC_WORDS;
    const pw = c[b + W_PACK] ?? 0;
    const type: BlobType = (pw & 1) === 1 ? 'tree' : 'data';
    return {
      packId: this.packIdAt(pw >>> 1),
      type,
      offset: c[b + W_OFFSET] ?? 0,
      length: c[b + W_LENGTH] ?? 0,
      rawLength: c[b + W_RAW] ?? 0,
    };
  }

  // ---- packs --------------------------------------------------------------

  private packIdAt(p: number): Buffer {
    const c = this.packs.chunks[p >>> PACK_SHIFT] ?? EMPTY;
    return writeId(c, (p & PACK_MASK) * PACK_WORDS);
  }

  private packSlot(kw: Uint32Array): { slot: number; pack: number } {
    const hash = this.packHash;
    const mask = this.packMask;
    let h = hashIdWords(kw, 0) & mask;
    for (;;) {
      const v = hash[h] ?? 0;
      if (v === 0) return { slot: h, pack: -1 };
      const p = v - 1;
      const c = this.packs.chunks[p >>> PACK_SHIFT] ?? EMPTY;
      if (compareWords(c, (p & PACK_MASK) * PACK_WORDS, kw, 0) === 0) return { slot: h, pack: p };
      h = (h + 1) & mask;
    }
  }

  private findPack(packId: Buffer): number {
    loadWords(packId, PACK_KEY);
    return this.packSlot(PACK_KEY).pack;
  }

  /** Returns the pack number of `packId`, adding it to the pack table if new. */
  private internPack(packId: Buffer): number {
    loadWords(packId, PACK_KEY);
    const { slot, pack } = this.packSlot(PACK_KEY);
    if (pack >= 0) return pack;
    const p = this.packCountValue;
    if (p >= MAX_PACKS) {
      throw new IndexCapacityError(`the blob index already references ${p} packs, the maximum; repack into larger packs.`);
    }
    this.packs.ensureCapacity(p + 1);
    const c = this.packs.chunks[p >>> PACK_SHIFT] ?? EMPTY;
    const b = (p & PACK_MASK) * PACK_WORDS;
    for (let k = 0; k < PACK_WORDS; k++) c[b + k] = PACK_KEY[k] ?? 0;
    this.packHash[slot] = p + 1;
    this.packCountValue = p + 1;
    if ((p + 1) * LOAD_DEN > this.packHash.length * LOAD_NUM) this.rehashPacks();
    return p;
  }

  private rehashPacks(): void {
    const hash = new Uint32Array(hashCapacity(this.packCountValue));
    const mask = hash.length - 1;
    for (let p = 0; p < this.packCountValue; p++) {
      const c = this.packs.chunks[p >>> PACK_SHIFT] ?? EMPTY;
      let h = hashIdWords(c, (p & PACK_MASK) * PACK_WORDS) & mask;
      while (hash[h] !== 0) h = (h + 1) & mask;
      hash[h] = p + 1;
    }
    this.packHash = hash;
    this.packMask = mask;
  }

  // ---- merging ------------------------------------------------------------

  /** Record numbers of the append region, sorted by id. */
  private sortedAppendOrder(): Uint32Array {
    const n = this.mainCount;
    const m = this.appendCount;
    const keys = new Uint32Array(m);
    const vals = new Uint32Array(m);
    for (let j = 0; j < m; j++) {
      const i = n + j;
      const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
      keys[j] = c[(i & REC_MASK) * REC_WORDS] ?? 0;
      vals[j] = i;
    }
    const sorted = radixSortPairs(keys, vals);
    const sk = sorted.keys;
    const order = sorted.vals;
    // Ids sharing their first word: insertion-sort each run by the full id.
    let start = 0;
    for (let j = 1; j <= m; j++) {
      if (j < m && sk[j] === sk[start]) continue;
      for (let x = start + 1; x < j; x++) {
        const v = order[x] ?? 0;
        const vc = this.records.chunks[v >>> REC_SHIFT] ?? EMPTY;
        const vb = (v & REC_MASK) * REC_WORDS;
        let y = x - 1;
        while (y >= start && this.compareAt(order[y] ?? 0, vc, vb) > 0) {
          order[y + 1] = order[y] ?? 0;
          y--;
        }
        order[y + 1] = v;
      }
      start = j;
    }
    return order;
  }

  /**
   * Merges the append region into the sorted main region, in place, from the
   * back, then rebuilds the directory and resets the append hash.
   */
  private merge(): void {
    const m = this.appendCount;
    if (m === 0) return;
    const n = this.mainCount;
    const order = this.sortedAppendOrder();
    const temp = new Uint32Array(m * REC_WORDS);
    const chunks = this.records.chunks;
    for (let j = 0; j < m; j++) {
      const i = order[j] ?? 0;
      const c = chunks[i >>> REC_SHIFT] ?? EMPTY;
      const b = (i & REC_MASK) * REC_WORDS;
      const t = j * REC_WORDS;
      for (let k = 0; k < REC_WORDS; k++) temp[t + k] = c[b + k] ?? 0;
    }
    let hi = n;
    for (let j = m - 1; j >= 0; j--) {
      const t = j * REC_WORDS;
      const p = this.lowerBound(temp, t, hi);
      if (p < hi) this.records.moveUp(p, p + j + 1, hi - p);
      const dst = p + j;
      const c = chunks[dst >>> REC_SHIFT] ?? EMPTY;
      const b = (dst & REC_MASK) * REC_WORDS;
      for (let k = 0; k < REC_WORDS; k++) c[b + k] = temp[t + k] ?? 0;
      hi = p;
    }
    this.mainCount = n + m;
    this.appendCount = 0;
    this.version++;
    this.updateDirectory(temp, m);

    this.mergeThreshold = Math.max(MIN_APPEND, this.mainCount >>> APPEND_SHIFT);
    const cap = hashCapacity(this.mergeThreshold);
    if (cap === this.appendHash.length) this.appendHash.fill(0);
    else this.appendHash = new Uint32Array(cap);
    this.appendMask = cap - 1;
    this.appendIdxBits = indexBits(this.mergeThreshold);
  }

  /**
   * Brings the directory up to date after `m` sorted records (`added`) were
   * merged into the main region. If the directory keeps its size this is
   * O(directory + m); otherwise it is rebuilt with one scan of the main region.
   */
  private updateDirectory(added: Uint32Array, m: number): void {
    const bits = directoryBits(this.mainCount);
    const size = 2 ** bits + 1;
    const shift = 32 - bits;
    const dir = this.dir;
    if (bits === this.dirBits) {
      let j = 0;
      for (let k = 0; k < size; k++) {
        while (j < m && (added[j * REC_WORDS] ?? 0) >>> shift < k) j++;
        dir[k] = (dir[k] ?? 0) + j;
      }
      return;
    }
    const fresh = new Uint32Array(size);
    const n = this.mainCount;
    for (let i = 0; i < n; i += this.records.chunkRecords) {
      const c = this.records.chunks[i >>> REC_SHIFT] ?? EMPTY;
      const end = Math.min(n - i, this.records.chunkRecords) * REC_WORDS;
      for (let b = 0; b < end; b += REC_WORDS) {
        const d = ((c[b] ?? 0) >>> shift) + 1;
        fresh[d] = (fresh[d] ?? 0) + 1;
      }
    }
    for (let k = 1; k < size; k++) fresh[k] = (fresh[k] ?? 0) + (fresh[k - 1] ?? 0);
    this.dir = fresh;
    this.dirBits = bits;
    this.dirShift = shift;
  }
}
