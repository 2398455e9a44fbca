/**
 * The node's volume jobs: at most `maxConcurrent` run at once, the others wait and start in the
 * order their objects were created (not the order the watch happened to deliver them, which after
 * a restart is arbitrary). Each running job has its own AbortController, so one can be cancelled
 * by its key without touching the others.
 */
export interface VolumeJob {
  /** Identifies the job (e.g. `PodVolumeBackup/ns/name`); a key is queued or running once at most. */
  readonly key: string;
  /** Jobs start oldest first (the object's creationTimestamp); ties go by key. */
  readonly createdAt: Date;
  /** Does the work; `signal` fires on cancel() or close(). Errors go to the queue's onError. */
  readonly run: (signal: AbortSignal) => Promise<void>;
}

export type CancelResult =
  /** It had not started and never will. */
  | 'dequeued'
  /** Its signal fired; its run() is winding down. */
  | 'aborted'
  /** No such job here (finished, or never added). */
  | 'unknown';

export class JobQueue {
  private readonly waiting: VolumeJob[] = [];
  private readonly running = new Map<string, { readonly controller: AbortController; readonly done: Promise<void> }>();
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly maxConcurrent: number;
  /** Gets what a job's run() threw; the queue goes on with the others. */
  private readonly onError: (key: string, err: unknown) => void;

  constructor(maxConcurrent: number, onError: (key: string, err: unknown) => void) {
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new RangeError(`maxConcurrent must be a positive integer, not ${maxConcurrent}.`);
    this.maxConcurrent = maxConcurrent;
    this.onError = onError;
  }

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  has(key: string): boolean {
    return this.running.has(key) || this.waiting.some((job) => job.key === key);
  }

  /** Queues the job; false (and nothing done) if its key is already queued or running, or the queue is closed. */
  add(job: VolumeJob): boolean {
    if (this.closed || this.has(job.key)) return false;
    const at = this.waiting.findIndex((other) => startsBefore(job, other));
    this.waiting.splice(at === -1 ? this.waiting.length : at, 0, job);
    this.startWaiting();
    return true;
  }

  cancel(key: string, reason?: unknown): CancelResult {
    const at = this.waiting.findIndex((job) => job.key === key);
    if (at !== -1) {
      this.waiting.splice(at, 1);
      this.notifyIfIdle();
      return 'dequeued';
    }
    const entry = this.running.get(key);
    if (entry === undefined) return 'unknown';
    entry.controller.abort(reason);
    return 'aborted';
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.running.size === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => { this.idleWaiters.push(resolve); });
  }

  /**
   * Stops taking jobs, drops the waiting ones (returned, so the caller knows which never started),
   * aborts the running ones and waits for their run() to return.
   */
  async close(reason?: unknown): Promise<string[]> {
    this.closed = true;
    const dropped = this.waiting.splice(0).map((job) => job.key);
    const done = [...this.running.values()].map((entry) => {
      entry.controller.abort(reason);
      return entry.done;
    });
    await Promise.all(done);
    this.notifyIfIdle();
    return dropped;
  }

  private startWaiting(): void {
    while (this.running.size < this.maxConcurrent) {
      const job = this.waiting.shift();
      if (job === undefined) return;
      const controller = new AbortController();
      const done = Promise.resolve()
        .then(() => job.run(controller.signal))
        .catch((err: unknown) => { this.onError(job.key, err); })
        .finally(() => {
          this.running.delete(job.key);
          this.startWaiting();
          this.notifyIfIdle();
        });
      this.running.set(job.key, { controller, done });
    }
  }

  private notifyIfIdle(): void {
    if (this.running.size > 0 || this.waiting.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function startsBefore(a: VolumeJob, b: VolumeJob): boolean {
  const dt = a.createdAt.getTime() - b.createdAt.getTime();
  return dt < 0 || (dt === 0 && a.key < b.key);
}
