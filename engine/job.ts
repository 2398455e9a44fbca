import { canceledBy, OperationCanceledError } from '../repository/errors.ts';
import { silentLogger, type Logger } from '../repository/logger.ts';
import type { Repository } from '../repository/repository.ts';
import { WorkerPool, workerSetupFor } from './pool/worker-pool.ts';

/**
 * After a cancel, what is left to do (index the packs already stored, release the lease) gets
 * this long. It is a few sequential requests: the index file is written under the lease's guard
 * (the lease confirmed before and after the put), then the lease is deleted; a storage that does
 * not answer in time is left alone (the packs are reused once a later run indexes them again, and
 * a lease expires by itself). All other work stops at once.
 */
export const CLEANUP_GRACE_MS = 5000;

/** What every door call takes besides its own options. */
export interface JobOptions {
  /** Cancels the job: the pool's tasks and the storage calls stop at once; the outcome is "canceled". */
  readonly signal?: AbortSignal | undefined;
  readonly logger?: Logger | undefined;
  /** Worker threads (default: one per core). */
  readonly workers?: number | undefined;
}

/**
 * One job's context: a view of the repository whose storage calls the job's signal cancels, and
 * another for the cleanup that follows a cancel, which that signal ends only after a grace.
 */
export class Job {
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** The job's view of the repository (its own index, cancelled with the job). */
  readonly repo: Repository;
  /** For the lease and the cleanup after a cancel (see CLEANUP_GRACE_MS). */
  readonly cleanupRepo: Repository;
  private readonly started = performance.now();
  private readonly dispose: () => void;

  constructor(repo: Repository, options: JobOptions, bindings: Readonly<Record<string, unknown>>) {
    this.signal = options.signal ?? new AbortController().signal;
    this.logger = (options.logger ?? silentLogger).child({ repository: repo.storage.location, ...bindings });
    this.repo = repo.withSignal(this.signal);
    const grace = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const startGrace = (): void => { timer = setTimeout(() => { grace.abort(canceledBy(this.signal)); }, CLEANUP_GRACE_MS); };
    if (this.signal.aborted) startGrace();
    else this.signal.addEventListener('abort', startGrace, { once: true });
    this.cleanupRepo = repo.withSignal(grace.signal);
    this.dispose = () => {
      this.signal.removeEventListener('abort', startGrace);
      clearTimeout(timer);
    };
  }

  get canceled(): boolean {
    return this.signal.aborted;
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /**
   * Runs `fn` with a worker pool that the job's signal aborts (its tasks fail at once, its
   * threads are terminated); the pool is closed either way.
   */
  async withPool<T>(fn: (pool: WorkerPool) => Promise<T>, backup: { spoolDir?: string; compressionLevel?: number } = {}, workers?: number): Promise<T> {
    const pool = new WorkerPool(workerSetupFor(this.repo.keys, this.repo.config, backup), workers);
    const abort = (): void => { pool.abort(canceledBy(this.signal)); };
    this.signal.addEventListener('abort', abort, { once: true });
    try {
      if (this.signal.aborted) abort();
      return await fn(pool);
    } finally {
      this.signal.removeEventListener('abort', abort);
      // After a cancel the threads are being terminated already; one stuck in a system call (a
      // hung network file system) would hold the caller until it returns, so it is not awaited.
      if (this.signal.aborted) void pool.close();
      else await pool.close();
    }
  }

  /**
   * Runs the job's work; a failure after the signal fired is the cancel showing through (a
   * rejected task, an aborted request), so it becomes OperationCanceledError whatever it was.
   */
  async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      if (this.signal.aborted) throw canceledBy(this.signal);
      return await work();
    } catch (err) {
      if (this.signal.aborted && !(err instanceof OperationCanceledError)) throw canceledBy(this.signal);
      throw err;
    } finally {
      this.dispose();
    }
  }
}
