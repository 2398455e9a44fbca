// `arca controller`: the cluster-level reconcilers (Deployment, two replicas, one leader). For now it
// connects, watches the Arca kinds in its namespace, campaigns for the Lease, reports ready, serves
// metrics and stops cleanly; the reconcilers arrive with the controller issue.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge } from 'prom-client';
import { KINDS } from '../kube/api/kinds.ts';
import { loadKubeConfig } from '../kube/client.ts';
import { reportingSetupErrors } from '../kube/errors.ts';
import { Command, Option, parseCommandLine, withDuration } from '../kube/command-line.ts';
import { parseDuration } from '../kube/duration.ts';
import { LeaderElector } from '../kube/leader-election.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../kube/logger.ts';
import { createRegistry, registerWatchedObjects } from '../kube/metrics.ts';
import { ResourceClient } from '../kube/resources.ts';
import { serve, watchersSynced, watchKind } from '../kube/service.ts';

interface ControllerOptions {
  namespace: string;
  kubeconfig?: string;
  metricsAddress: string;
  leaderElect: boolean;
  leaderElectionId: string;
  leaderElectionNamespace?: string;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  logLevel: LogLevel;
}

const FIELD_MANAGER = 'arca-controller';
const RESYNC_MS = 10 * 60_000;
const duration = withDuration(parseDuration);

export async function run(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  const command = new Command('arca controller')
    .description('The controller: schedules, backup sets, restores, sync and maintenance (runs as a Deployment).')
    .addOption(new Option('--namespace <ns>', 'namespace of the Arca objects, Secrets and Lease').default(env.POD_NAMESPACE ?? 'arca-system', '$POD_NAMESPACE or arca-system'))
    .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster, then $KUBECONFIG)')
    .option('--metrics-address <host:port>', 'where /healthz, /readyz and /metrics are served', ':8080')
    .option('--no-leader-elect', 'run the reconcilers without taking the Lease (one replica only)')
    .option('--leader-election-id <name>', 'name of the coordination.k8s.io Lease', 'arca-controller')
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: --namespace)')
    .addOption(new Option('--lease-duration <duration>', 'how long a Lease holds without renewal').argParser(duration).default(15_000, '15s'))
    .addOption(new Option('--renew-deadline <duration>', 'how long the leader retries renewing before it steps down').argParser(duration).default(10_000, '10s'))
    .addOption(new Option('--retry-period <duration>', 'time between Lease attempts').argParser(duration).default(2_000, '2s'))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'));
  const parsed = parseCommandLine<ControllerOptions>(command, argv);
  if (!parsed.ok) return parsed.exitCode;
  const options = parsed.options;
  return reportingSetupErrors('arca controller', async () => {
    const log = createLogger('controller', options.logLevel);
    const kc = loadKubeConfig({ kubeconfig: options.kubeconfig, env });
    const registry = createRegistry('controller');
    const identity = `${env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
    const elector = options.leaderElect
      ? new LeaderElector(kc, {
        namespace: options.leaderElectionNamespace ?? options.namespace,
        name: options.leaderElectionId,
        identity,
        leaseDurationMs: options.leaseDuration,
        renewDeadlineMs: options.renewDeadline,
        retryPeriodMs: options.retryPeriod,
      }, log)
      : undefined;
    new Gauge({ name: 'arca_controller_leader', help: '1 while this replica holds the Lease.', registers: [registry], collect() { this.set(elector === undefined || elector.isLeader ? 1 : 0); } });
    log.info({ namespace: options.namespace, identity, leaderElect: options.leaderElect, server: kc.getCurrentCluster()?.server }, 'controller starting');

    return serve({
      log,
      registry,
      metricsAddress: options.metricsAddress,
      async start(stopping) {
        const watchers = KINDS.map((kind) => watchKind({
          kc,
          client: new ResourceClient(kc, kind, FIELD_MANAGER),
          namespace: options.namespace,
          resyncMs: RESYNC_MS,
          log,
          registry,
          handlers: { onUpsert: (object) => { log.debug({ kind: object.kind, name: object.metadata.name }, 'seen'); } },
        }));
        registerWatchedObjects(registry, watchers);
        await Promise.all(watchers.map((w) => w.start()));
        // Every replica watches and is ready (both serve the webhook); only the leader will reconcile.
        const campaign = new AbortController();
        stopping.addEventListener('abort', () => { campaign.abort(); }, { once: true });
        let lostLeadership!: (code: number) => void;
        const failed = new Promise<number>((resolve) => { lostLeadership = resolve; });
        const election = elector?.run(campaign.signal, {
          onStartedLeading: () => undefined,
          onLostLeadership: () => { lostLeadership(1); },
        });
        return {
          readiness: { watches: watchersSynced(watchers) },
          failed,
          async stop() {
            campaign.abort();
            await election;
            await Promise.all(watchers.map((w) => w.stop()));
          },
        };
      },
    });
  });
}
