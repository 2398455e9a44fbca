// `arca agent`: the node agent (DaemonSet). For now it connects, watches this node's
// PodVolumeBackups and PodVolumeRestores, reports ready, serves metrics and stops cleanly; the
// reconcilers arrive with the agent issue.
import { PodVolumeBackupKind, PodVolumeRestoreKind } from '../kube/api/kinds.ts';
import { NODE_LABEL } from '../kube/api/labels.ts';
import { loadKubeConfig } from '../kube/client.ts';
import { reportingSetupErrors } from '../kube/errors.ts';
import { Command, Option, parseCommandLine, positiveInteger } from '../kube/command-line.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../kube/logger.ts';
import { createRegistry, registerWatchedObjects } from '../kube/metrics.ts';
import { ResourceClient } from '../kube/resources.ts';
import { serve, watchersSynced, watchKind } from '../kube/service.ts';

interface AgentOptions {
  node?: string;
  podsDir: string;
  cacheDir: string;
  maxConcurrent: number;
  namespace: string;
  kubeconfig?: string;
  metricsAddress: string;
  logLevel: LogLevel;
}

const FIELD_MANAGER = 'arca-agent';
const RESYNC_MS = 5 * 60_000;

export async function run(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  const command = new Command('arca agent')
    .description('The node agent: backs up and restores the pod volumes of one node (runs as a DaemonSet).')
    .addOption(new Option('--node <name>', 'the node this agent serves').default(env.NODE_NAME, '$NODE_NAME, from the downward API'))
    .option('--pods-dir <dir>', 'the kubelet pods directory as mounted in the container', '/host_pods')
    .option('--cache-dir <dir>', 'repository cache, on a hostPath so it outlives the pod', '/var/cache/arca')
    .option('--max-concurrent <n>', 'volume jobs run at once', positiveInteger, 2)
    .addOption(new Option('--namespace <ns>', 'namespace of the Arca objects and Secrets').default(env.POD_NAMESPACE ?? 'arca-system', '$POD_NAMESPACE or arca-system'))
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
    const log = createLogger('agent', options.logLevel);
    const kc = loadKubeConfig({ kubeconfig: options.kubeconfig, env });
    const registry = createRegistry('agent');
    log.info({ node, podsDir: options.podsDir, cacheDir: options.cacheDir, maxConcurrent: options.maxConcurrent, namespace: options.namespace, server: kc.getCurrentCluster()?.server }, 'agent starting');

    return serve({
      log,
      registry,
      metricsAddress: options.metricsAddress,
      async start() {
        const labelSelector = `${NODE_LABEL}=${node}`;
        const watchers = [PodVolumeBackupKind, PodVolumeRestoreKind].map((kind) => watchKind({
          kc,
          client: new ResourceClient(kc, kind, FIELD_MANAGER),
          namespace: options.namespace,
          labelSelector,
          resyncMs: RESYNC_MS,
          log,
          registry,
          handlers: { onUpsert: (object) => { log.debug({ kind: object.kind, name: object.metadata.name, phase: object.status?.phase }, 'seen'); } },
        }));
        registerWatchedObjects(registry, watchers);
        await Promise.all(watchers.map((w) => w.start()));
        return {
          readiness: { watches: watchersSynced(watchers) },
          async stop() {
            await Promise.all(watchers.map((w) => w.stop()));
          },
        };
      },
    });
  });
}
