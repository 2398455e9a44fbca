import { constants as zc, createZstdCompress, createZstdDecompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/**
 * zstd compression and decompression into buffers the caller owns, with one context kept per
 * object and reused for every call.
 *
 * Why not zstdCompressSync: each call makes a new native context and output buffers that the
 * garbage collector frees only after two collections with a turn of the event loop between them.
 * A worker sealing a megabyte chunk every few milliseconds kept ~100 MiB of them alive this way.
 * Here the context lives as long as this object, and the output goes where the caller says.
 *
 * This drives the native handle behind Node's zstd streams directly (`_handle.writeSync`, the
 * call Node's own sync functions make). Should a Node version not have it, every call falls back
 * to the public one-shot functions: slower to collect, never wrong.
 */
interface NativeZstdHandle {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, out: Uint8Array, outOffset: number, outLength: number): void;
  reset(): void;
  onerror: (message: string, errno: number) => void;
}

interface NativeParts {
  readonly handle: NativeZstdHandle;
  /** [output bytes left, input bytes left] after each writeSync. */
  readonly state: Uint32Array;
}

function nativeParts(stream: object): NativeParts | undefined {
  const inner = stream as { _handle?: unknown; _writeState?: unknown };
  const handle = inner._handle as Partial<NativeZstdHandle> | null | undefined;
  if (typeof handle?.writeSync !== 'function' || typeof handle.reset !== 'function' || !(inner._writeState instanceof Uint32Array)) return undefined;
  return { handle: handle as NativeZstdHandle, state: inner._writeState };
}

/** zstd failed on the data itself (it is not a zstd frame, or not a whole one). */
export class ZstdDataError extends Error {
  readonly code = 'ARCA_ERR_ZSTD_DATA';
}

export class ZstdCompressor {
  readonly level: number;
  private readonly native: NativeParts | undefined;

  constructor(level: number) {
    this.level = level;
    this.native = nativeParts(createZstdCompress({ params: { [zc.ZSTD_c_compressionLevel]: level } }));
  }

  /**
   * Compresses `input` as one zstd frame into `out[0, limit)` and returns its length, or -1 when
   * the frame does not fit in `limit` bytes (the caller then stores the input as it is).
   */
  compressInto(input: Uint8Array, out: Uint8Array, limit = out.length): number {
    if (limit > out.length) throw new RangeError(`limit ${limit} is past the end of a ${out.length}-byte buffer`);
    const native = this.native;
    if (!native) {
      const frame = zstdCompressSync(input, { params: { [zc.ZSTD_c_compressionLevel]: this.level } });
      if (frame.length >= limit) return -1;
      out.set(frame);
      return frame.length;
    }
    native.handle.writeSync(zc.ZSTD_e_end, input, 0, input.length, out, 0, limit);
    const [outLeft = 0, inLeft = 0] = native.state;
    // With output space to spare and all input taken, ZSTD_e_end has written the whole frame.
    // Otherwise the frame is cut off: drop it, so the next call starts a fresh one.
    if (inLeft !== 0 || outLeft === 0) {
      native.handle.reset();
      return -1;
    }
    return limit - outLeft;
  }
}

export class ZstdDecompressor {
  private native: NativeParts | undefined;
  private failure: string | undefined = undefined;

  constructor() {
    this.native = this.fresh();
  }

  /**
   * Decompresses one whole zstd frame into `out` and returns the plaintext length. Throws
   * ZstdDataError when `frame` is not one whole frame, or its content does not fit in `out`.
   */
  decompressInto(frame: Uint8Array, out: Uint8Array): number {
    const native = this.native;
    if (!native) {
      let plain: Buffer;
      try {
        plain = zstdDecompressSync(frame);
      } catch (err) {
        throw new ZstdDataError(`zstd: ${(err as Error).message}`);
      }
      if (plain.length > out.length) throw new ZstdDataError(`zstd frame holds more than ${out.length} bytes`);
      out.set(plain);
      return plain.length;
    }
    this.failure = undefined;
    native.handle.writeSync(zc.ZSTD_e_end, frame, 0, frame.length, out, 0, out.length);
    const [outLeft = 0, inLeft = 0] = native.state;
    const failure = this.failure as string | undefined;
    if (failure !== undefined || inLeft !== 0 || outLeft === 0) {
      // A context that failed mid-frame is not trusted again.
      this.native = this.fresh();
      if (failure !== undefined) throw new ZstdDataError(`zstd: ${failure}`);
      throw new ZstdDataError(inLeft !== 0 ? 'zstd frame has trailing data' : `zstd frame holds more than ${out.length - 1} bytes`);
    }
    return out.length - outLeft;
  }

  private fresh(): NativeParts | undefined {
    const native = nativeParts(createZstdDecompress());
    // Node's own handler would close the handle on bad data; note the error and throw it instead.
    if (native) native.handle.onerror = (message) => { this.failure = message; };
    return native;
  }
}
