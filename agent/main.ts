// `arca agent`: the node agent (DaemonSet). Only wiring: it watches this node's PodVolumeBackups and
// PodVolumeRestores, hands them to their reconcilers, runs their jobs in one queue, and on SIGTERM
// stops the jobs and hands them back (Accepted) for the next agent.
import os from 'node:os';
import { CoreV1Api } from '@kubernetes/client-node';
import { PodVolumeBackupKind, PodVolumeRestoreKind } from '../kube/api/kinds.ts';
import { NODE_LABEL } from '../kube/api/labels.ts';
import { loadKubeConfig } from '../kube/client.ts';
import { reportingSetupErrors } from '../kube/errors.ts';
import { Command, Option, parseCommandLine, positiveInteger, withDuration } from '../kube/command-line.ts';
import { parseDuration } from '../kube/duration.ts';
import { EventRecorder } from '../kube/events.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../kube/logger.ts';
import { createRegistry, registerWatchedObjects } from '../kube/metrics.ts';
import { ResourceClient } from '../kube/resources.ts';
import { serve, watchersSynced, watchKind } from '../kube/service.ts';
import { backupWork } from './backup-work.ts';
import { JobQueue } from './job-queue.ts';
import { registerAgentMetrics } from './metrics.ts';
import { JobAbort, PodVolumeReconciler, type ReconcilerOptions } from './pod-volume-reconciler.ts';
import { kubeRepositorySource, RepositoryPool } from '../repository-access/pool.ts';
import { restoreWork } from './restore-work.ts';

interface AgentOptions {
  node?: string;
  podsDir: string;
  cacheDir: string;
  maxConcurrent: number;
  maxAttempts: number;
  podCheckInterval: number;
  namespace: string;
  cluster: string;
  kubeconfig?: string;
  metricsAddress: string;
  logLevel: LogLevel;
}

const FIELD_MANAGER = 'arca-agent';
const RESYNC_MS = 5 * 60_000;
/** Status progress is written at most this often. */
const PROGRESS_INTERVAL_MS = 3_000;

export async function run(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  const command = new Command('arca agent')
    .description('The node agent: backs up and restores the pod volumes of one node (runs as a DaemonSet).')
    .addOption(new Option('--node <name>', 'the node this agent serves').default(env.NODE_NAME, '$NODE_NAME, from the downward API'))
    .option('--pods-dir <dir>', 'the kubelet pods directory as mounted in the container', '/host_pods')
    .option('--cache-dir <dir>', 'repository cache, on a hostPath so it outlives the pod', '/var/cache/arca')
    .option('--max-concurrent <n>', 'volume jobs run at once', positiveInteger, 2)
    .option('--max-attempts <n>', 'starts of one job before it is failed (the agent died during each)', positiveInteger, 3)
    .addOption(new Option('--pod-check-interval <duration>', 'how often a running job\'s pod is looked up (one GET per job), so a deleted pod stops its job').argParser(withDuration(parseDuration)).default(3_000, '3s'))
    .addOption(new Option('--namespace <ns>', 'namespace of the Arca objects and Secrets').default(env.POD_NAMESPACE ?? 'arca-system', '$POD_NAMESPACE or arca-system'))
    .addOption(new Option('--cluster <name>', 'this cluster\'s name in snapshot labels').default(env.ARCA_CLUSTER ?? 'default', '$ARCA_CLUSTER or "default"'))
    .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster, then $KUBECONFIG)')
    .option('--metrics-address <host:port>', 'where /healthz, /readyz and /metrics are served', ':8085')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'));
  const parsed = parseCommandLine<AgentOptions>(command, argv);
  if (!parsed.ok) return parsed.exitCode;
  const options = parsed.options;
  const node = options.node;
  if (node === undefined || node === '') {
    process.stderr.write('arca agent: no node name: pass --node or set NODE_NAME (the DaemonSet sets it from spec.nodeName).\n');
    return 2;
  }
  return reportingSetupErrors('arca agent', async () => {
    const log = createLogger('agent', options.logLevel).child({ node });
    const kc = loadKubeConfig({ kubeconfig: options.kubeconfig, env });
    const registry = createRegistry('agent');
    log.info({ podsDir: options.podsDir, cacheDir: options.cacheDir, maxConcurrent: options.maxConcurrent, namespace: options.namespace, server: kc.getCurrentCluster()?.server }, 'agent starting');

    return serve({
      log,
      registry,
      metricsAddress: options.metricsAddress,
      async start() {
        const queue = new JobQueue(options.maxConcurrent, (key, err) => {
          log.error({ job: key, err: err instanceof Error ? err.message : String(err) }, 'job ended with an error; the next resync takes it up again');
        });
        const metrics = registerAgentMetrics(registry, queue);
        const repositories = new RepositoryPool(kubeRepositorySource(kc, options.namespace, FIELD_MANAGER), options.cacheDir, log);
        const core = kc.makeApiClient(CoreV1Api);
        // The node's cores shared among its concurrent jobs.
        const workers = Math.max(1, Math.floor(os.availableParallelism() / options.maxConcurrent));
        const events = new EventRecorder({ kc, controller: 'arca.dev/agent', instance: node, log });
        const common = { kc, node, queue, events, metrics, log, maxAttempts: options.maxAttempts, progressIntervalMs: PROGRESS_INTERVAL_MS, podCheckIntervalMs: options.podCheckInterval };
        const labelSelector = `${NODE_LABEL}=${node}`;
        const watchCommon = { kc, namespace: options.namespace, labelSelector, resyncMs: RESYNC_MS, log, registry };
        const backups = new ResourceClient(kc, PodVolumeBackupKind, FIELD_MANAGER);
        const restores = new ResourceClient(kc, PodVolumeRestoreKind, FIELD_MANAGER);
        const backupOptions: ReconcilerOptions<typeof PodVolumeBackupKind> = {
          ...common, client: backups,
          work: backupWork({ core, podsDir: options.podsDir, node, cluster: options.cluster, repositories, workers }),
        };
        const restoreOptions: ReconcilerOptions<typeof PodVolumeRestoreKind> = {
          ...common, client: restores,
          work: restoreWork({ core, podsDir: options.podsDir, repositories, workers }),
        };
        const backupReconciler = new PodVolumeReconciler(backupOptions);
        const restoreReconciler = new PodVolumeReconciler(restoreOptions);
        const watchers = [
          watchKind({ ...watchCommon, client: backups, handlers: { onUpsert: (object) => { backupReconciler.onUpsert(object); } } }),
          watchKind({ ...watchCommon, client: restores, handlers: { onUpsert: (object) => { restoreReconciler.onUpsert(object); } } }),
        ];
        registerWatchedObjects(registry, watchers);
        await Promise.all(watchers.map((w) => w.start()));
        return {
          readiness: { watches: watchersSynced(watchers) },
          async stop() {
            await Promise.all(watchers.map((w) => w.stop()));
            // Running jobs see "stopping" and hand their objects back; waiting ones stay Accepted.
            await queue.close(new JobAbort('stopping'));
            await repositories.closeAll();
          },
        };
      },
    });
  });
}
