// The frame shared by `arca agent` and `arca controller`: logs, health and metrics server up first
// (so /readyz says what it waits for), then the process's own parts, then a clean stop on SIGTERM.
import { Counter, type Registry } from 'prom-client';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KindDefinition, Resource } from './api/kinds.ts';
import { startHealthServer, type ReadinessCheck } from './health-server.ts';
import type { Logger } from './logger.ts';
import { ResourceClient } from './resources.ts';
import { shutdownOnSignals } from './shutdown.ts';
import { Watcher, type WatcherHandlers } from './watcher.ts';

export interface Running {
  /** Checks that must pass before /readyz answers 200. */
  readiness: Record<string, ReadinessCheck>;
  /** Resolves to an exit code if the process must end by itself (e.g. leadership lost). */
  failed?: Promise<number>;
  /** Stops everything: called once on SIGTERM/SIGINT. */
  stop(): Promise<void>;
}

export interface ServeOptions {
  log: Logger;
  registry: Registry;
  metricsAddress: string;
  /** Starts the process's parts; `stopping` aborts on the first signal. */
  start: (stopping: AbortSignal) => Promise<Running>;
}

/** Runs until a signal (exit code 0 after a clean stop) or a failure the parts report. */
export async function serve({ log, registry, metricsAddress, start }: ServeOptions): Promise<number> {
  const shutdown = shutdownOnSignals((name) => {
    log.warn({ signal: name }, 'second signal: exiting without a clean stop');
    process.exit(1);
  });
  const readiness: Record<string, ReadinessCheck> = { started: () => 'starting' };
  const server = await startHealthServer({ address: metricsAddress, registry, readiness });
  log.info({ url: server.url }, 'serving /healthz, /readyz and /metrics');
  let running: Running | undefined;
  try {
    running = await start(shutdown.signal);
    delete readiness.started;
    Object.assign(readiness, running.readiness);
    log.info('started');
    const outcome = await Promise.race([shutdown.requested.then((signal) => ({ signal })), (running.failed ?? new Promise<never>(() => undefined)).then((code) => ({ code }))]);
    if ('signal' in outcome) log.info({ signal: outcome.signal }, 'stopping');
    const startedAt = Date.now();
    await running.stop();
    log.info({ ms: Date.now() - startedAt }, 'stopped');
    return 'code' in outcome ? outcome.code : 0;
  } catch (err) {
    if (running) await running.stop();
    throw err;
  } finally {
    await server.close();
    shutdown.dispose();
  }
}

export interface KindWatchOptions<K extends KindDefinition> {
  kc: KubeConfig;
  client: ResourceClient<K>;
  namespace: string | undefined;
  labelSelector?: string;
  resyncMs: number;
  log: Logger;
  registry: Registry;
  handlers: WatcherHandlers<Resource<K>>;
}

interface WatchCounters {
  restarts: Counter<'collection'>;
  requests: Counter<'collection'>;
}

const watchCounters = new WeakMap<Registry, WatchCounters>();

/** A watcher over one of our kinds, its objects checked by the kind's schema and its restarts counted. */
export function watchKind<K extends KindDefinition>(options: KindWatchOptions<K>): Watcher<Resource<K>> {
  const { client, namespace, registry } = options;
  let counters = watchCounters.get(registry);
  if (!counters) {
    counters = {
      restarts: new Counter({ name: 'arca_watch_restarts_total', help: 'Watches restarted after an error.', labelNames: ['collection'], registers: [registry] }),
      requests: new Counter({ name: 'arca_watch_requests_total', help: 'Watch requests made: the first, after the server ended one (every 5 to 10 minutes), after an error.', labelNames: ['collection'], registers: [registry] }),
    };
    watchCounters.set(registry, counters);
  }
  const { restarts, requests } = counters;
  const name = client.kind.kind;
  return new Watcher<Resource<K>>({
    kc: options.kc,
    name,
    path: client.path(namespace),
    list: () => client.listRaw(namespace, { labelSelector: options.labelSelector }),
    parse: (raw) => client.parse(raw),
    labelSelector: options.labelSelector,
    resyncMs: options.resyncMs,
    log: options.log,
    onRestart: () => { restarts.inc({ collection: name }); },
    onWatchRequest: () => { requests.inc({ collection: name }); },
  }, options.handlers);
}

/** Readiness of a set of watchers: each must have its first list in. */
export function watchersSynced(watchers: readonly { name: string; isSynced: boolean }[]): ReadinessCheck {
  return () => {
    const waiting = watchers.filter((w) => !w.isSynced).map((w) => w.name);
    return waiting.length === 0 ? undefined : `waiting for the first list of ${waiting.join(', ')}`;
  };
}
