// List-then-watch of one collection, kept running: client-node's ListWatch lists, watches and relists
// after 410 Gone, but stops on any other error; this restarts it with exponential backoff, tells
// when the first list is in (readiness), and replays the cache after each restart and every resync
// period so level-based reconcilers repair whatever a missed event or a failed step left behind.
//
// Each watch request asks the server to end it after a few minutes (as client-go's reflectors do) and
// for bookmarks, which keep the resourceVersion it resumes from fresh; ListWatch then resumes from
// that version without a relist. client-node's Watch aborts a connection that has been silent for
// 30 s, which on a quiet collection (an agent's PodVolumeRestores while nothing is restored) meant a
// new watch every 30 s: the silence allowed here is the server's own deadline plus a grace period,
// so only a connection the server failed to end is taken for dead.
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from './logger.ts';

export interface WatcherHandlers<T> {
  /** Added, changed, or replayed by a resync: reconcile it. */
  onUpsert: (object: T) => void;
  onDelete?: (object: T) => void;
  /** An object that does not match its schema (logged, then ignored until it changes). */
  onInvalid?: (raw: unknown, error: Error) => void;
}

export interface WatcherOptions<T> {
  kc: KubeConfig;
  /** What the collection is called in logs and metrics, e.g. `PodVolumeBackup`. */
  name: string;
  /** API path of the collection, e.g. `/api/v1/pods` or `/apis/arca.dev/v1alpha1/namespaces/x/podvolumebackups`. */
  path: string;
  list: () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>;
  /** Checks and types one object; throws when it is malformed. */
  parse: (raw: unknown) => T;
  labelSelector?: string;
  fieldSelector?: string;
  /** How often every cached object is handed to onUpsert again (0: never). */
  resyncMs?: number;
  /** Backoff after an error, doubling from the first to the last (default 1 s to 60 s). */
  backoffMs?: { initial: number; max: number };
  log: Logger;
  /** Called on each restart after an error (a metric counts them). */
  onRestart?: () => void;
  /** Called on each watch request: the first, after the server ended one, after an error. */
  onWatchRequest?: () => void;
  /**
   * How long the server keeps one watch request open, in seconds: a random length in this range,
   * so that many watchers do not all come back at once (default 300 to 600, as client-go).
   */
  watchTimeoutSeconds?: { min: number; max: number };
}

/** Silence allowed beyond the server's deadline before a watch connection is taken for dead. */
const WATCH_DEADLINE_GRACE_MS = 30_000;

/**
 * client-node's Watch with the query a long-lived watch needs: a server-side timeout and bookmarks.
 * Its client-side inactivity limit (`requestTimeoutMs`, fixed at 30 s and not settable in 2.0.1) is
 * raised above that timeout; a test against the API server (test/kube/watcher.test.ts) checks that a
 * quiet watch is not restarted.
 */
class LongWatch extends Watch {
  private readonly timeoutSeconds: { min: number; max: number };
  private readonly onRequest: (() => void) | undefined;

  constructor(kc: KubeConfig, timeoutSeconds: { min: number; max: number }, onRequest: (() => void) | undefined) {
    super(kc);
    this.timeoutSeconds = timeoutSeconds;
    this.onRequest = onRequest;
    Object.assign(this, { requestTimeoutMs: timeoutSeconds.max * 1000 + WATCH_DEADLINE_GRACE_MS });
  }

  override watch(...[path, queryParams, callback, done]: Parameters<Watch['watch']>): Promise<AbortController> {
    const { min, max } = this.timeoutSeconds;
    const timeoutSeconds = min + Math.floor(Math.random() * (max - min + 1));
    this.onRequest?.();
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, callback, done);
  }
}

export class Watcher<T> {
  readonly name: string;
  private readonly options: WatcherOptions<T>;
  private readonly handlers: WatcherHandlers<T>;
  private readonly listWatch: ListWatch<KubernetesObject>;
  private readonly stopping = new AbortController();
  private synced = false;
  private running: Promise<void> | undefined;

  constructor(options: WatcherOptions<T>, handlers: WatcherHandlers<T>) {
    this.name = options.name;
    this.options = options;
    this.handlers = handlers;
    const list = async () => {
      const raw = await options.list();
      return { items: raw.items as KubernetesObject[], metadata: { resourceVersion: raw.metadata?.resourceVersion } };
    };
    const watch = new LongWatch(options.kc, options.watchTimeoutSeconds ?? { min: 300, max: 600 }, options.onWatchRequest);
    this.listWatch = new ListWatch(options.path, watch, list, false, options.labelSelector, options.fieldSelector);
    this.listWatch.on('add', (o) => { this.deliver(o, handlers.onUpsert); });
    this.listWatch.on('update', (o) => { this.deliver(o, handlers.onUpsert); });
    this.listWatch.on('delete', (o) => { if (handlers.onDelete) this.deliver(o, handlers.onDelete); });
  }

  /** True once a list has been received since the last error: the cache is complete. */
  get isSynced(): boolean {
    return this.synced;
  }

  /** The cached objects (as last listed or watched). */
  cached(): T[] {
    const out: T[] = [];
    for (const raw of this.listWatch.list()) {
      try {
        out.push(this.options.parse(raw));
      } catch {
        // reported when it arrived
      }
    }
    return out;
  }

  /** The cached object `name` (in `namespace` for a namespaced collection), if present and well-formed. */
  get(name: string, namespace?: string): T | undefined {
    const raw = this.listWatch.get(name, namespace);
    if (raw === undefined) return undefined;
    try {
      return this.options.parse(raw);
    } catch {
      return undefined; // reported when it arrived
    }
  }

  /** Starts watching; resolves once the first list is in, retrying with backoff until then or stop(). */
  async start(): Promise<void> {
    const firstSync = new Promise<void>((resolve) => { this.running = this.run(resolve); });
    await Promise.race([firstSync, this.running]);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.listWatch.stop();
    await this.running;
  }

  private async run(onFirstSync: () => void): Promise<void> {
    const { initial, max } = this.options.backoffMs ?? { initial: 1_000, max: 60_000 };
    const signal = this.stopping.signal;
    let delay = initial;
    let startedOnce = false;
    const resync = this.options.resyncMs ? setInterval(() => { this.resync(); }, this.options.resyncMs) : undefined;
    try {
      while (!signal.aborted) {
        // ListWatch reports a fatal error through its error callback (also from inside start()).
        let fail!: (err: unknown) => void;
        const failed = new Promise<unknown>((resolve) => { fail = resolve; });
        const attempt = { failed: false };
        const onError = (err: unknown) => { attempt.failed = true; fail(err); };
        this.listWatch.on('error', onError);
        await this.listWatch.start();
        if (!attempt.failed && !this.isStopping()) {
          const restarted = startedOnce;
          this.synced = true;
          startedOnce = true;
          delay = initial;
          onFirstSync();
          // The relist reports only the objects that changed meanwhile; what a reconciler failed to
          // do while the server was unreachable (e.g. a status write) is on the unchanged ones too.
          if (restarted) this.resync();
        }
        const err = await Promise.race([failed, abortPromise(signal)]);
        this.listWatch.off('error', onError);
        if (this.isStopping()) break;
        this.synced = false;
        await this.listWatch.stop();
        this.options.log.warn({ err: errorText(err), collection: this.options.name, retryInMs: delay }, 'watch failed; restarting after backoff');
        this.options.onRestart?.();
        await sleep(delay, undefined, { signal }).catch(() => undefined);
        delay = Math.min(delay * 2, max);
      }
    } finally {
      clearInterval(resync);
    }
  }

  private isStopping(): boolean {
    return this.stopping.signal.aborted;
  }

  private resync(): void {
    if (!this.synced) return;
    for (const raw of this.listWatch.list()) this.deliver(raw, this.handlers.onUpsert);
  }

  private deliver(raw: KubernetesObject, handler: (object: T) => void): void {
    let object: T;
    try {
      object = this.options.parse(raw);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.handlers.onInvalid) this.handlers.onInvalid(raw, error);
      else this.options.log.warn({ collection: this.options.name, err: error.message }, 'ignoring an invalid object');
      return;
    }
    handler(object);
  }
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => { resolve(); }, { once: true });
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
