// `arca controller`: the cluster-level reconcilers (Deployment, two replicas, one leader). Every
// replica watches and serves the restore webhook; the one holding the Lease reconciles.
import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { Gauge } from 'prom-client';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../kube/client.ts';
import { KubeSetupError, reportingSetupErrors } from '../kube/errors.ts';
import { atLeast, Command, Option, parseCommandLine, withDuration } from '../kube/command-line.ts';
import { parseDuration } from '../kube/duration.ts';
import { LeaderElector } from '../kube/leader-election.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../kube/logger.ts';
import { createRegistry } from '../kube/metrics.ts';
import { serve, watchersSynced } from '../kube/service.ts';
import { startController } from './controller.ts';
import { SERVING_VALIDITY_MS } from './webhook/certificate.ts';

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
  webhookAddress: string;
  webhookConfiguration: string;
  webhookSecret: string;
  webhookService: string;
  webhookHost: string[];
  webhookCertValidity: number;
  restoreWaitImage?: string;
  cacheDir: string;
  repositoryCheckPeriod: number;
  maintenanceImage?: string;
  maintenanceMemory: string;
}

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
    .option('--webhook-address <host:port>', 'where the restore webhook listens (TLS)', ':9443')
    .option('--webhook-configuration <name>', 'the MutatingWebhookConfiguration whose caBundle the controller keeps', 'arca-restore')
    .option('--webhook-secret <name>', 'Secret (in --namespace) holding the webhook CA and serving certificate', 'arca-webhook-tls')
    .option('--webhook-service <name>', 'Service in front of the webhook: its DNS names go into the certificate', 'arca-controller')
    .option('--webhook-host <name>', 'another DNS name or IP address for the certificate (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .addOption(new Option('--webhook-cert-validity <duration>', 'life of the webhook serving certificate; renewed at two thirds of it, without a restart').argParser(atLeast(duration, 3_000, '3s')).default(SERVING_VALIDITY_MS, '8760h'))
    .addOption(new Option('--restore-wait-image <image>', 'image of the injected init container (default: this pod\'s own image)').env('ARCA_IMAGE'))
    .option('--cache-dir <dir>', 'directory of the repositories\' local caches', path.join(tmpdir(), 'arca-controller'))
    .addOption(new Option('--repository-check-period <duration>', 'how often each BackupRepository is opened again to check it').argParser(duration).default(300_000, '5m'))
    .option('--maintenance-image <image>', 'image of the maintenance Jobs (arca prune, arca check; default: the restore-wait image)')
    .option('--maintenance-memory <quantity>', 'memory request and limit of each maintenance container', '1Gi')
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
        const service = `${options.webhookService}.${options.namespace}.svc`;
        const image = options.restoreWaitImage ?? await ownImage(kc, options.namespace, env.POD_NAME);
        const controller = await startController({
          kc, namespace: options.namespace, instance: identity, resyncMs: RESYNC_MS, log, registry,
          cacheDir: options.cacheDir, periods: { repositoryCheckMs: options.repositoryCheckPeriod },
          maintenance: { image: options.maintenanceImage ?? image, memory: options.maintenanceMemory },
          webhook: {
            address: options.webhookAddress,
            configuration: options.webhookConfiguration,
            secret: options.webhookSecret,
            hosts: [service, `${service}.cluster.local`, ...options.webhookHost],
            certificateValidityMs: options.webhookCertValidity,
            restoreWaitImage: image,
          },
        });
        const watchers = controller.watchers;
        // Every replica watches and is ready (all serve the webhook); only the leader reconciles.
        const campaign = new AbortController();
        stopping.addEventListener('abort', () => { campaign.abort(); }, { once: true });
        let lostLeadership!: (code: number) => void;
        const failed = new Promise<number>((resolve) => { lostLeadership = resolve; });
        if (elector === undefined) controller.lead(campaign.signal);
        const election = elector?.run(campaign.signal, {
          onStartedLeading: (lost) => { controller.lead(lost); },
          onLostLeadership: () => { lostLeadership(1); },
        });
        return {
          readiness: { watches: watchersSynced(watchers) },
          failed,
          async stop() {
            campaign.abort();
            await election;
            await controller.stop();
          },
        };
      },
    });
  });
}

/** The image this controller pod runs, which also holds `arca restore-wait`. */
async function ownImage(kc: KubeConfig, namespace: string, podName: string | undefined): Promise<string> {
  if (podName === undefined) throw new KubeSetupError('Cannot tell which image the restore init container runs: pass --restore-wait-image or set ARCA_IMAGE (or POD_NAME in a pod).');
  const pod = await kc.makeApiClient(CoreV1Api).readNamespacedPod({ namespace, name: podName });
  const image = pod.spec?.containers.find((c) => c.name === 'controller')?.image ?? pod.spec?.containers[0]?.image;
  if (image === undefined) throw new KubeSetupError(`Pod ${namespace}/${podName} names no image; pass --restore-wait-image.`);
  return image;
}
