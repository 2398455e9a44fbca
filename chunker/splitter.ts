import { ChunkerArgumentError } from './errors.ts';
import type { FastCdc } from './fastcdc.ts';

/** First capacity of the carry-over buffer; it doubles up to maxSize as needed. */
const INITIAL_TAIL_CAPACITY = 64 * 1024;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Incremental chunker: feed the input in pieces of any size with `push`, then call `finish`.
 * The chunks are exactly those `chunkBuffer` gives for the concatenated input.
 *
 * ALIASING: chunks returned by `push` are, where possible, views (`subarray`) of the `data`
 * passed to that same call, not copies. The caller must consume (hash, compress, write) or
 * copy every returned chunk before it overwrites or reuses the buffer it pushed. Only bytes
 * that cannot be decided yet (the start of the next chunk, always fewer than maxSize bytes)
 * are copied into the splitter; a chunk spanning two pushes is a fresh buffer.
 */
export class ChunkSplitter {
  readonly #cdc: FastCdc;
  /** Undecided bytes carried over from earlier pushes: the start of the next chunk. */
  #tail: Buffer | undefined;
  #tailLength = 0;
  /** Rolling-hash state after the tail, valid while #tailLength > 0. */
  #tailHash = 0;

  constructor(cdc: FastCdc) {
    this.#cdc = cdc;
  }

  /** Number of bytes currently carried over (always < maxSize). */
  get pendingBytes(): number {
    return this.#tailLength;
  }

  /**
   * Adds the next piece of input and returns the chunks completed by it, in order (possibly
   * none). See the class comment: returned chunks may alias `data`.
   */
  push(data: Uint8Array): Buffer[] {
    if (!(data instanceof Uint8Array)) throw new ChunkerArgumentError('push() takes a Uint8Array (or Buffer).');
    const out: Buffer[] = [];
    const buf = asBuffer(data);
    const len = buf.length;
    if (len === 0) return out;
    const cdc = this.#cdc;
    let pos = 0;
    const tail = this.#tail;
    if (this.#tailLength > 0 && tail !== undefined) {
      const tailLength = this.#tailLength;
      const cut = cdc.resumeCut(buf, 0, len, tailLength, this.#tailHash, false);
      if (cut < 0) {
        this.#appendTail(buf, 0, len);
        this.#tailHash = cdc.lastHash;
        return out;
      }
      const chunk = Buffer.allocUnsafe(tailLength + cut);
      tail.copy(chunk, 0, 0, tailLength);
      buf.copy(chunk, tailLength, 0, cut);
      out.push(chunk);
      this.#tailLength = 0;
      pos = cut;
    }
    while (pos < len) {
      const cut = cdc.findCut(buf, pos, len, false);
      if (cut < 0) {
        this.#appendTail(buf, pos, len);
        this.#tailHash = cdc.lastHash;
        break;
      }
      out.push(buf.subarray(pos, cut));
      pos = cut;
    }
    return out;
  }

  /**
   * Ends the input: returns the last chunk, or undefined when there is none (empty input, or
   * the input ended exactly on a boundary). The splitter is then reset and can take a new
   * input.
   */
  finish(): Buffer | undefined {
    const tail = this.#tail;
    const length = this.#tailLength;
    this.#tail = undefined;
    this.#tailLength = 0;
    this.#tailHash = 0;
    if (tail === undefined || length === 0) return undefined;
    // The splitter drops its reference, so the carry-over buffer can be handed out as is.
    return tail.subarray(0, length);
  }

  #appendTail(buf: Buffer, start: number, end: number): void {
    const needed = this.#tailLength + (end - start);
    let tail = this.#tail;
    if (tail === undefined || tail.length < needed) {
      let capacity = tail === undefined ? INITIAL_TAIL_CAPACITY : tail.length * 2;
      while (capacity < needed) capacity *= 2;
      capacity = Math.min(capacity, this.#cdc.params.maxSize);
      const grown = Buffer.allocUnsafeSlow(capacity);
      if (tail !== undefined) tail.copy(grown, 0, 0, this.#tailLength);
      this.#tail = grown;
      tail = grown;
    }
    buf.copy(tail, this.#tailLength, start, end);
    this.#tailLength = needed;
  }
}

/**
 * Splits a whole buffer. The chunks are views of `buf` (no copy); their concatenation is
 * `buf`. An empty buffer gives no chunk.
 */
export function chunkBuffer(cdc: FastCdc, buf: Uint8Array): Buffer[] {
  const b = asBuffer(buf);
  const out: Buffer[] = [];
  const len = b.length;
  let pos = 0;
  while (pos < len) {
    const cut = cdc.findCut(b, pos, len, true);
    out.push(b.subarray(pos, cut));
    pos = cut;
  }
  return out;
}

/**
 * Chunks an async byte stream (e.g. a `fs.createReadStream`). Empty input yields nothing.
 *
 * Yielded chunks may be views of the source's buffers (see `ChunkSplitter`). A source that
 * reuses its buffers between reads (unlike Node streams, which allocate fresh ones) requires
 * the consumer to consume or copy each chunk before asking for the next one.
 */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, cdc: FastCdc): AsyncGenerator<Buffer> {
  const splitter = new ChunkSplitter(cdc);
  for await (const data of source) {
    yield* splitter.push(data);
  }
  const last = splitter.finish();
  if (last !== undefined) yield last;
}
