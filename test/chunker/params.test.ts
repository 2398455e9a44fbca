import { describe, expect, it } from 'vitest';
import { ChunkerParamsError, DEFAULT_CHUNKER_PARAMS, validateChunkerParams, type ChunkerParams } from '../../chunker/index.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function expectParamsError(p: Partial<ChunkerParams>, pattern: RegExp): void {
  let caught: unknown;
  try {
    validateChunkerParams(p);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ChunkerParamsError);
  const err = caught as ChunkerParamsError;
  expect(err.code).toBe('ARCA_ERR_CHUNKER_PARAMS');
  expect(err.name).toBe('ChunkerParamsError');
  expect(err.message).toMatch(pattern);
}

describe('validateChunkerParams', () => {
  it('has 512 KiB / 1 MiB / 8 MiB defaults', () => {
    expect(DEFAULT_CHUNKER_PARAMS).toEqual({ minSize: 512 * KiB, avgSize: MiB, maxSize: 8 * MiB });
    expect(validateChunkerParams({})).toEqual(DEFAULT_CHUNKER_PARAMS);
    expect(validateChunkerParams({ ...DEFAULT_CHUNKER_PARAMS })).toEqual(DEFAULT_CHUNKER_PARAMS);
  });

  it('derives missing sizes from the average', () => {
    expect(validateChunkerParams({ avgSize: 64 * KiB })).toEqual({ minSize: 32 * KiB, avgSize: 64 * KiB, maxSize: 512 * KiB });
    expect(validateChunkerParams({ avgSize: 16 * MiB })).toEqual({ minSize: 8 * MiB, avgSize: 16 * MiB, maxSize: 64 * MiB });
    expect(validateChunkerParams({ minSize: 64, avgSize: 128, maxSize: 129 })).toEqual({ minSize: 64, avgSize: 128, maxSize: 129 });
  });

  it('rejects non-integers', () => {
    expectParamsError({ minSize: 1000.5 }, /minSize must be an integer.*1000\.5/);
    expectParamsError({ avgSize: Number.NaN }, /avgSize must be an integer.*NaN/);
    expectParamsError({ maxSize: Number.POSITIVE_INFINITY }, /maxSize must be an integer/);
    expectParamsError({ avgSize: '1048576' as unknown as number }, /avgSize must be an integer.*"1048576"/);
    expectParamsError({ minSize: null as unknown as number }, /minSize must be an integer.*null/);
    expectParamsError(null as unknown as Partial<ChunkerParams>, /expected an object/);
  });

  it('rejects a minimum below 64 bytes', () => {
    expectParamsError({ minSize: 63, avgSize: 1024, maxSize: 4096 }, /minSize is 63 bytes but must be at least 64/);
    expectParamsError({ minSize: 0, avgSize: 1024, maxSize: 4096 }, /at least 64/);
    expectParamsError({ minSize: -1, avgSize: 1024, maxSize: 4096 }, /at least 64/);
  });

  it('rejects an average that is not a power of two', () => {
    expectParamsError({ minSize: 64 * KiB, avgSize: 1_000_000, maxSize: 4 * MiB }, /avgSize is 1000000 bytes but must be a power of two \(e\.g\. 1048576\)/);
    expectParamsError({ minSize: 64, avgSize: 3 * KiB, maxSize: 4 * MiB }, /power of two/);
  });

  it('requires minSize < avgSize < maxSize', () => {
    expectParamsError({ minSize: MiB, avgSize: MiB, maxSize: 8 * MiB }, /minSize < avgSize < maxSize/);
    expectParamsError({ minSize: 2 * MiB, avgSize: MiB, maxSize: 8 * MiB }, /minSize < avgSize < maxSize/);
    expectParamsError({ minSize: 512 * KiB, avgSize: MiB, maxSize: MiB }, /minSize < avgSize < maxSize/);
    expectParamsError({ minSize: 512 * KiB, avgSize: MiB, maxSize: 100 }, /minSize=524288, avgSize=1048576, maxSize=100/);
    // Only avgSize given, smaller than the default minimum the caller did give.
    expectParamsError({ minSize: 512 * KiB, avgSize: 64 * KiB }, /minSize < avgSize < maxSize/);
  });

  it('rejects a maximum above 64 MiB', () => {
    expectParamsError({ minSize: MiB, avgSize: 4 * MiB, maxSize: 64 * MiB + 1 }, /maxSize is 67108865 bytes but must be at most 67108864/);
    expectParamsError({ avgSize: 64 * MiB }, /minSize < avgSize < maxSize|at most/);
  });
});
