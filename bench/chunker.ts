/**
 * Chunker throughput: `node bench/chunker.ts` (Node >= 23.6 strips the types) or, after
 * `npm run build`, `npm run bench:chunker`. Chunks 256 MiB of random and of text-like data
 * with the default parameters, single-threaded, best of 3 runs. MB/s are 10^6 bytes per second
 * of input.
 *
 * Extra lines: `stream64k` pushes the random data through a ChunkSplitter in 64 KiB reads
 * (includes copying the carried-over bytes); `gearloop` uses min=64 / avg=32 MiB so that
 * nearly every byte is hashed: the raw speed of the rolling-hash loop, without the benefit of
 * cut-point skipping (with the defaults about half of each chunk, its first 512 KiB, is
 * never hashed).
 */
import { createCipheriv } from 'node:crypto';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ChunkSplitter, FastCdc } from '../chunker/index.ts';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const RUNS = 3;

/** Deterministic random bytes: AES-256-CTR keystream under a fixed key. */
function randomData(size: number, seed: number): Buffer {
  const key = Buffer.alloc(32, seed);
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const out = Buffer.allocUnsafeSlow(size);
  const zeros = Buffer.alloc(16 * MiB);
  for (let off = 0; off < size; off += zeros.length) {
    const n = Math.min(zeros.length, size - off);
    cipher.update(zeros.subarray(0, n)).copy(out, off);
  }
  return out;
}

const VOCABULARY = (
  'the of and to in is it that for on was with as be by at this are from or have not an ' +
  'they which one you were all we her she there been his their if has will more when would ' +
  'who so no volume backup snapshot kubernetes pod node cluster storage repository chunk ' +
  'index pack blob tree key error warning info debug request response status ready true false'
).split(' ');

/** Compressible pseudo-text: words from a small vocabulary, spaces, punctuation, newlines. */
function textData(size: number): Buffer {
  const words = VOCABULARY.map((w) => Buffer.from(w, 'latin1'));
  const out = Buffer.allocUnsafeSlow(size);
  let x = 0x9e3779b9;
  let pos = 0;
  let lineLength = 0;
  while (pos < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const word = words[(x >>> 0) % words.length] ?? words[0];
    if (word === undefined) break;
    pos += word.copy(out, pos);
    lineLength += word.length + 1;
    if (pos >= size) break;
    if (lineLength > 72) {
      out[pos++] = 0x0a; // newline
      lineLength = 0;
    } else if ((x & 15) === 0) {
      out[pos++] = 0x2e; // '.'
    } else {
      out[pos++] = 0x20; // ' '
    }
  }
  return out;
}

function oneShot(cdc: FastCdc, data: Buffer): number {
  let pos = 0;
  let count = 0;
  while (pos < data.length) {
    pos = cdc.findCut(data, pos, data.length, true);
    count++;
  }
  return count;
}

function streamed(cdc: FastCdc, data: Buffer, readSize: number): number {
  const splitter = new ChunkSplitter(cdc);
  let count = 0;
  for (let pos = 0; pos < data.length; pos += readSize) {
    count += splitter.push(data.subarray(pos, pos + readSize)).length;
  }
  if (splitter.finish() !== undefined) count++;
  return count;
}

function bench(name: string, data: Buffer, run: () => number): void {
  let best = Infinity;
  let chunks = 0;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const count = run();
    const ms = performance.now() - t0;
    best = Math.min(best, ms);
    chunks = count;
  }
  const mbps = data.length / 1e6 / (best / 1000);
  const meanKiB = data.length / chunks / 1024;
  console.log(
    `${name.padEnd(9)} ${(data.length / MiB).toFixed(0)} MiB  best of ${RUNS}: ${best.toFixed(1)} ms  ` +
      `${mbps.toFixed(0)} MB/s  chunks=${chunks}  mean=${meanKiB.toFixed(0)} KiB`,
  );
}

const cdc = new FastCdc(Buffer.alloc(32, 7));
console.log(`Node ${process.version}  CPU: ${cpus()[0]?.model ?? 'unknown'}`);
console.log(`params: min=${cdc.params.minSize} avg=${cdc.params.avgSize} max=${cdc.params.maxSize} normal=${cdc.normalSize}`);
const random = randomData(SIZE, 1);
bench('random', random, () => oneShot(cdc, random));
const text = textData(SIZE);
bench('text', text, () => oneShot(cdc, text));
bench('stream64k', random, () => streamed(cdc, random, 64 * 1024));
const raw = new FastCdc(Buffer.alloc(32, 7), { minSize: 64, avgSize: 32 * MiB, maxSize: 64 * MiB });
bench('gearloop', random, () => oneShot(raw, random));
