import { ChunkerParamsError } from './errors.ts';

/** Chunk size bounds of the content-defined chunker, in bytes. */
export interface ChunkerParams {
  /** No chunk except the last one of a stream is shorter than this. */
  minSize: number;
  /** Target mean chunk size on high-entropy data; a power of two. */
  avgSize: number;
  /** No chunk is longer than this: a cut is forced here. */
  maxSize: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Smallest allowed `minSize`. */
export const MIN_CHUNK_SIZE_LIMIT = 64;
/** Largest allowed `maxSize`. */
export const MAX_CHUNK_SIZE_LIMIT = 64 * MiB;

/** 512 KiB / 1 MiB / 8 MiB. */
export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({
  minSize: 512 * KiB,
  avgSize: 1 * MiB,
  maxSize: 8 * MiB,
});

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  return typeof value;
}

function checkSize(name: keyof ChunkerParams, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new ChunkerParamsError(`${name} must be an integer number of bytes, got ${describe(value)}.`);
  }
  return value;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

/**
 * Completes and checks chunker parameters.
 *
 * Missing fields are derived from the average: `avgSize` defaults to 1 MiB, `minSize` to
 * `avgSize / 2` and `maxSize` to `8 * avgSize` (at most 64 MiB), which gives the defaults
 * 512 KiB / 1 MiB / 8 MiB.
 *
 * @throws ChunkerParamsError (code `ARCA_ERR_CHUNKER_PARAMS`) when a value is not an integer,
 *   `minSize` < 64 B, `avgSize` is not a power of two, `minSize < avgSize < maxSize` does not
 *   hold, or `maxSize` > 64 MiB.
 */
export function validateChunkerParams(p: Partial<ChunkerParams>): ChunkerParams {
  const raw: unknown = p; // may come from parsed JSON: do not trust the static type
  if (typeof raw !== 'object' || raw === null) {
    throw new ChunkerParamsError(`expected an object with minSize, avgSize and maxSize, got ${describe(raw)}.`);
  }
  const avgSize = p.avgSize === undefined ? DEFAULT_CHUNKER_PARAMS.avgSize : checkSize('avgSize', p.avgSize);
  const minSize = p.minSize === undefined ? Math.floor(avgSize / 2) : checkSize('minSize', p.minSize);
  const maxSize = p.maxSize === undefined ? Math.min(avgSize * 8, MAX_CHUNK_SIZE_LIMIT) : checkSize('maxSize', p.maxSize);

  if (minSize < MIN_CHUNK_SIZE_LIMIT) {
    throw new ChunkerParamsError(`minSize is ${minSize} bytes but must be at least ${MIN_CHUNK_SIZE_LIMIT} bytes.`);
  }
  if (!isPowerOfTwo(avgSize)) {
    throw new ChunkerParamsError(`avgSize is ${avgSize} bytes but must be a power of two (e.g. ${2 ** Math.round(Math.log2(Math.max(avgSize, 1)))}).`);
  }
  if (!(minSize < avgSize && avgSize < maxSize)) {
    throw new ChunkerParamsError(
      `sizes must satisfy minSize < avgSize < maxSize, got minSize=${minSize}, avgSize=${avgSize}, maxSize=${maxSize}.`,
    );
  }
  if (maxSize > MAX_CHUNK_SIZE_LIMIT) {
    throw new ChunkerParamsError(`maxSize is ${maxSize} bytes but must be at most ${MAX_CHUNK_SIZE_LIMIT} bytes (64 MiB).`);
  }
  return { minSize, avgSize, maxSize };
}
