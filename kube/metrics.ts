import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** A registry with the Node.js process metrics, labelled by component (agent, controller). */
export function createRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: 'arca_' });
  return registry;
}

export interface WatchedCollection {
  readonly name: string;
  cached(): readonly { status?: object }[];
}

/** `arca_watched_objects{kind,phase}`, counted from the watchers' caches at each scrape. */
export function registerWatchedObjects(registry: Registry, collections: readonly WatchedCollection[]): void {
  new Gauge({
    name: 'arca_watched_objects',
    help: 'Objects in the watch caches, by kind and phase.',
    labelNames: ['kind', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const collection of collections) {
        const counts = new Map<string, number>();
        for (const object of collection.cached()) {
          const phase = phaseOf(object.status);
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, count] of counts) this.set({ kind: collection.name, phase }, count);
      }
    },
  });
}

function phaseOf(status: object | undefined): string {
  const phase = status !== undefined && 'phase' in status ? status.phase : undefined;
  return typeof phase === 'string' ? phase : 'none';
}
