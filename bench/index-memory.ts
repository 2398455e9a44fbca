/**
 * Memory and speed benchmark for the in-memory blob index.
 *
 *   node --expose-gc bench/index-memory.ts [N]      (default N = 10,000,000)
 *
 * Inserts N pseudo-random blob ids spread over N/16 packs (16 blobs per pack,
 * like ~16 MiB packs of ~1 MiB chunks), then reports:
 *   - retained bytes per blob after GC: delta of heapUsed + external
 *     (process.memoryUsage().external already includes arrayBuffers, so the
 *     two are not added twice; arrayBuffers is shown separately),
 *   - the index's own accounting (BlobIndex.memoryBytes()),
 *   - peak RSS of the process,
 *   - insert rate, and lookup rates for present and absent ids.
 *
 * Ids are derived from their ordinal by a bijective mixer, so the benchmark
 * can regenerate any inserted id without storing them (which would itself
 * cost 32+ bytes per blob and distort the measurement).
 */
import { BlobIndex } from '../repository/index/index.ts';
import { fmix32 } from '../repository/index/id-words.ts';

/** Fills `out` with the 32-byte id number `i` of family `seed`; distinct i give distinct ids. */
function fillId(out: Buffer, seed: number, i: number): void {
  let w = fmix32(i ^ seed); // bijective in i: ids never collide within a family
  out.writeUInt32BE(w, 0);
  for (let k = 1; k < 8; k++) {
    w = fmix32((w + Math.imul(k, 0x9e3779b9)) ^ seed);
    out.writeUInt32BE(w, k * 4);
  }
}

function parseCount(arg: string | undefined): number {
  if (arg === undefined) return 10_000_000;
  const n = Number(arg.replaceAll('_', '').replaceAll(',', ''));
  if (!Number.isInteger(n) || n < 16) {
    throw new Error(`invalid blob count ${JSON.stringify(arg)}: pass an integer >= 16, e.g. 10000000 or 1e7`);
  }
  return n;
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

const gcFn = globalThis.gc;
if (gcFn === undefined) {
  console.error('run with: node --expose-gc bench/index-memory.ts [N]');
  process.exit(2);
}
const collect = (): NodeJS.MemoryUsage => {
  gcFn();
  gcFn();
  return process.memoryUsage();
};

const N = parseCount(process.argv[2]);
const PACKS = Math.ceil(N / 16);
const SEED_BLOBS = 0x5eed_0001;
const SEED_ABSENT = 0x5eed_0002;
const SEED_PACKS = 0x5eed_0003;

const id = Buffer.alloc(32);
const packId = Buffer.alloc(32);

// Warm up (compile the hot paths, load lazily-initialised runtime state) so the
// baseline below is not inflated by one-off garbage.
{
  const warm = new BlobIndex();
  for (let i = 0; i < 50_000; i++) {
    fillId(id, 0x0bad_cafe, i);
    warm.add(id, { packId: id, type: 'data', offset: 0, length: 1, rawLength: 1 });
    warm.has(id);
    warm.get(id);
  }
}

const before = collect();
const index = new BlobIndex();

console.log(`inserting ${fmt(N, 0)} blobs over ${fmt(PACKS, 0)} packs (node ${process.version})`);
let t0 = performance.now();
for (let i = 0; i < N; i++) {
  fillId(id, SEED_BLOBS, i);
  if ((i & 15) === 0) fillId(packId, SEED_PACKS, i >>> 4);
  const length = 1000 + (fmix32(i) & 0xfffff);
  index.add(id, { packId, type: (i & 63) === 0 ? 'tree' : 'data', offset: (i & 15) * 0x200000, length, rawLength: length + 100 });
}
const insertMs = performance.now() - t0;
if (index.size !== N) throw new Error(`expected ${N} blobs, index has ${index.size}`);

const after = collect();
const retained = after.heapUsed + after.external - (before.heapUsed + before.external);

// Lookups: Q random present ids, then Q absent ids.
const Q = Math.min(N, 2_000_000);
let rng = 0x9e3779b9;
const nextIndex = (): number => {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return (rng >>> 0) % N;
};

t0 = performance.now();
let found = 0;
for (let q = 0; q < Q; q++) {
  fillId(id, SEED_BLOBS, nextIndex());
  if (index.has(id)) found++;
}
const hasPresentMs = performance.now() - t0;
if (found !== Q) throw new Error(`only ${found} of ${Q} present ids were found`);

t0 = performance.now();
let checksum = 0;
for (let q = 0; q < Q; q++) {
  fillId(id, SEED_BLOBS, nextIndex());
  const loc = index.get(id);
  if (loc !== undefined) checksum += loc.offset;
}
const getPresentMs = performance.now() - t0;

t0 = performance.now();
let falsePositives = 0;
for (let q = 0; q < Q; q++) {
  fillId(id, SEED_ABSENT, nextIndex());
  if (index.has(id)) falsePositives++;
}
const hasAbsentMs = performance.now() - t0;

// Cost of generating the ids alone, to put the lookup rates in context.
t0 = performance.now();
for (let q = 0; q < Q; q++) fillId(id, SEED_BLOBS, nextIndex());
const genMs = performance.now() - t0;

const peakRssBytes = process.resourceUsage().maxRSS * 1024;
const perSec = (count: number, ms: number): string => `${fmt((count / ms) * 1000, 0)}/s`;

console.log(`insert:             ${perSec(N, insertMs)} (${fmt(insertMs / 1000, 2)} s)`);
console.log(`has (present):      ${perSec(Q, hasPresentMs)}`);
console.log(`get (present):      ${perSec(Q, getPresentMs)} (checksum ${checksum})`);
console.log(`has (absent):       ${perSec(Q, hasAbsentMs)} (${falsePositives} unexpected hits)`);
console.log(`(id generation alone: ${perSec(Q, genMs)}; included in the rates above)`);
console.log(`retained heapUsed+external: ${fmt(retained / N, 2)} bytes/blob (${fmt(retained / 2 ** 20)} MiB)`);
console.log(
  `  of which arrayBuffers:    ${fmt((after.arrayBuffers - before.arrayBuffers) / N, 2)} bytes/blob; heapUsed ${fmt((after.heapUsed - before.heapUsed) / N, 2)} bytes/blob`,
);
console.log(`index.memoryBytes():        ${fmt(index.memoryBytes() / N, 2)} bytes/blob`);
console.log(`peak RSS:                   ${fmt(peakRssBytes / 2 ** 20)} MiB (${fmt(peakRssBytes / N, 2)} bytes/blob incl. the Node runtime)`);
console.log(`packs referenced:           ${fmt(index.packCount, 0)}`);
