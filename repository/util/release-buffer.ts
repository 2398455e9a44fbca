/**
 * Frees a buffer's memory now instead of at the garbage collector's convenience, and leaves it
 * empty (length 0). Only a buffer that owns its whole ArrayBuffer is freed; a view into a shared
 * one (Buffer's small-allocation pool, a slice of a bigger read) is left alone.
 *
 * Why: sealed blobs are made in worker threads and moved to the main thread, whose garbage
 * collector does not count memory another thread allocated. Packs of them that were uploaded
 * long ago stayed allocated until some unrelated collection, a few hundred MiB at a time.
 * Call this only when nothing else will read the buffer again.
 */
export function releaseBuffer(buf: Uint8Array): void {
  const backing = buf.buffer;
  if (!(backing instanceof ArrayBuffer) || backing.detached) return;
  if (buf.byteOffset !== 0 || buf.byteLength !== backing.byteLength) return;
  backing.transfer(0);
}
