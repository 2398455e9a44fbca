// A queue of object names to reconcile, as controller-runtime keeps one per kind: a name queued
// several times is reconciled once; one being reconciled is reconciled again afterwards if it was
// queued meanwhile; a failure is retried with backoff; a reconciler may ask to be called again later.
import type { Logger } from '../kube/logger.ts';

/** What a reconcile asks for next: nothing, or another look after a while (e.g. the next cron slot). */
export type ReconcileResult = { requeueAfterMs: number } | undefined;

export interface WorkQueueOptions {
  name: string;
  reconcile: (key: string) => Promise<ReconcileResult>;
  log: Logger;
  backoffMs?: { initial: number; max: number };
  /** Different names reconciled at once (default 4); one name is never reconciled twice at once. */
  concurrency?: number;
  onError?: () => void;
}

export class WorkQueue {
  private readonly options: WorkQueueOptions;
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private active = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: WorkQueueOptions) {
    this.options = options;
  }

  add(key: string): void {
    if (!this.active) return;
    this.queued.add(key);
    this.wake?.();
  }

  /** Queues `key` after `ms` (a later add wins nothing: the earliest timer stays). */
  addAfter(key: string, ms: number): void {
    if (!this.active || this.timers.has(key)) return;
    this.timers.set(key, setTimeout(() => { this.timers.delete(key); this.add(key); }, ms));
  }

  /** Starts working; names added before start are ignored (the caller queues what it has on start). */
  start(): void {
    this.active = true;
    this.loop = this.work();
  }

  async stop(): Promise<void> {
    this.active = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queued.clear();
    this.wake?.();
    await this.loop;
  }

  private async work(): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const concurrency = this.options.concurrency ?? 4;
    while (this.active) {
      const key = inFlight.size < concurrency ? [...this.queued].find((k) => !this.running.has(k)) : undefined;
      if (key === undefined) {
        await Promise.race([new Promise<void>((resolve) => { this.wake = resolve; }), ...inFlight]);
        this.wake = undefined;
        continue;
      }
      this.queued.delete(key);
      this.running.add(key);
      const job = this.runOne(key).finally(() => { this.running.delete(key); inFlight.delete(job); this.wake?.(); });
      inFlight.add(job);
    }
    await Promise.all(inFlight);
  }

  private async runOne(key: string): Promise<void> {
    const { initial, max } = this.options.backoffMs ?? { initial: 500, max: 60_000 };
    try {
      const result = await this.options.reconcile(key);
      this.failures.delete(key);
      if (result !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const delay = Math.min(initial * 2 ** (failures - 1), max);
      this.options.onError?.();
      this.options.log.warn({ queue: this.options.name, key, err: err instanceof Error ? err.message : String(err), retryInMs: delay }, 'reconcile failed; retrying');
      this.addAfter(key, delay);
    }
  }
}
