import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../kube/logger.ts';
import { Watcher, type WatcherOptions } from '../../kube/watcher.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable } from '../support/control-plane.ts';
import { until } from '../support/controller-process.ts';

interface Named { metadata: { name: string; resourceVersion: string } }

/** A watcher over one namespace's ConfigMaps that counts its lists, watch requests and deliveries. */
function countingWatcher(kc: KubeConfig, namespace: string, options: Partial<WatcherOptions<Named>> = {}) {
  const core = kc.makeApiClient(CoreV1Api);
  const counts = { lists: 0, watchRequests: 0, restarts: 0 };
  const upserts: string[] = [];
  const watcher = new Watcher<Named>({
    kc,
    name: 'ConfigMap',
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: async () => {
      counts.lists++;
      const list = await core.listNamespacedConfigMap({ namespace });
      return { items: list.items, metadata: list.metadata };
    },
    parse: (raw) => raw as Named,
    log: createLogger('watcher-test', 'warn'),
    onRestart: () => { counts.restarts++; },
    onWatchRequest: () => { counts.watchRequests++; },
    ...options,
  }, { onUpsert: (o) => { upserts.push(`${o.metadata.name}@${o.metadata.resourceVersion}`); } });
  /** Creates ConfigMap `name`; waits until the watcher has delivered it unless `delivered` is false. */
  const create = async (name: string, delivered = true): Promise<void> => {
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name }, data: { a: '1' } } });
    if (delivered) await until(() => upserts.some((u) => u.startsWith(`${name}@`)) || undefined);
  };
  return { watcher, counts, upserts, create };
}

describe.skipIf(!kubeAvailable)('Watcher against the API server', () => {
  let kc: KubeConfig;

  beforeAll(() => {
    kc = adminKubeConfig();
  });

  // The agents' PodVolumeRestore watches were made anew every 30 s while nothing was restored
  // (client-node's 30 s limit on a silent connection); the server keeps a watch open for minutes.
  test('a watch on a quiet collection stays one request for longer than a client-side silence limit of 30 s', async () => {
    const namespace = await createTestNamespace(kc, 'watcher-quiet');
    const { watcher, counts, upserts, create } = countingWatcher(kc, namespace);
    await watcher.start();
    try {
      await sleep(45_000);
      expect(counts).toEqual({ lists: 1, watchRequests: 1, restarts: 0 });
      await create('after-the-quiet');
      expect(counts).toEqual({ lists: 1, watchRequests: 1, restarts: 0 });
      expect(upserts).toHaveLength(1);
    } finally {
      await watcher.stop();
    }
  }, 90_000);

  test('when the server ends a watch at its deadline, the next one resumes from the last version without a relist', async () => {
    const namespace = await createTestNamespace(kc, 'watcher-resume');
    const { watcher, counts, upserts, create } = countingWatcher(kc, namespace, { watchTimeoutSeconds: { min: 1, max: 1 } });
    await create('before-start', false);
    await watcher.start();
    try {
      for (let i = 0; i < 3; i++) {
        const requests = counts.watchRequests;
        await until(() => counts.watchRequests > requests || undefined);
        await create(`during-${i}`);
      }
      await until(() => counts.watchRequests >= 6 || undefined);
      expect(counts.lists).toBe(1);
      expect(counts.restarts).toBe(0);
      // Each object delivered once: no relist replayed them, no resumed watch sent them again.
      expect(upserts.map((u) => u.slice(0, u.indexOf('@'))).sort()).toEqual(['before-start', 'during-0', 'during-1', 'during-2']);
    } finally {
      await watcher.stop();
    }
  }, 90_000);
});
