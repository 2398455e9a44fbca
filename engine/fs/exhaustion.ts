/** Errors that mean the process or the system ran out of descriptors or memory for a moment. */
const EXHAUSTED = new Set(['EMFILE', 'ENFILE', 'ENOMEM']);
/** Waits double from 5 ms up to this (about 40 s in all) before the error is given up on. */
const LONGEST_WAIT_MS = 20_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs a synchronous file-system step; when it fails for want of descriptors or memory (others
 * hold them for now), waits and tries again instead of failing the file. Blocks the calling
 * thread while it waits: meant for the pool's workers, whose steps are synchronous anyway.
 */
export function retryWhenExhausted<T>(step: () => T): T {
  for (let wait = 5; ; wait *= 2) {
    try {
      return step();
    } catch (err) {
      const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
      if (code === undefined || !EXHAUSTED.has(code) || wait > LONGEST_WAIT_MS) throw err;
      Atomics.wait(sleeper, 0, 0, wait);
    }
  }
}
