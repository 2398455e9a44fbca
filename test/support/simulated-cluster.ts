// Arca's processes on simulated nodes of a real control plane, for the end-to-end journeys and
// `npm run demo:kubernetes`. Nothing runs in pods here (no kubelet, no container engine), so this
// plays the kubelet: it binds pods to nodes, makes their volume directories under each node's pods
// directory, reports their status, and runs the init container `arca restore-wait` as a process
// with the arguments the webhook injected. The controller and one agent per node run beside the API
// server. Every process's output is kept, so a failed journey can print what each one said.
//
// No vitest import: the demo script uses this too.
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { AdmissionregistrationV1Api, BatchV1Api, CoreV1Api, type KubeConfig, type V1Container, type V1Job, type V1Pod } from '@kubernetes/client-node';
import {
  BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, VolumeBackupKind, VolumeBackupScheduleKind, VolumeRestoreKind,
} from '../../kube/api/kinds.ts';
import { RESTORE_INIT_CONTAINER } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { stopChild, waitForLine } from './child-process.ts';
import { collectOutput, startArca, type RunResult } from './cli.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until,
} from './controller-process.ts';

/** How much of each process's output a failure report shows (its end). */
const REPORT_TAIL_CHARS = 12_000;

/** The kubelet's directory of each volume of a pod, relative to the pod's `volumes/`. */
export type VolumeDirs = Record<string, string>;

/** A process whose output is kept for the failure report. */
interface Recorded {
  readonly name: string;
  readonly child: ChildProcess;
  output: string;
}

export interface SimulatedClusterOptions {
  readonly kubeconfig: string;
  /** Where the nodes' pods directories and caches live. */
  readonly root: string;
  /** The namespace the controller and agents work in. */
  readonly namespace: string;
  /** The agents' --cluster (the snapshots' cluster label). */
  readonly cluster: string;
  /**
   * Kubeconfigs the agents and the controller use instead of `kubeconfig`, e.g. their service
   * accounts' tokens under the RBAC of manifests/ (then the webhook configuration must be the
   * manifests' `arca-restore`, the only one the controller may patch).
   */
  readonly processKubeconfigs?: { readonly agent: string; readonly controller: string };
  /** The restore webhook configuration made to reach the controller (default: a new name). */
  readonly webhookConfiguration?: string;
  /**
   * Start the controller again when it exits by itself (its Deployment's restartPolicy), e.g.
   * after it lost its Lease while the API server was away.
   */
  readonly restartExitedController?: boolean;
}

export class SimulatedCluster {
  readonly core: CoreV1Api;
  readonly repositories: ResourceClient<typeof BackupRepositoryKind>;
  readonly schedules: ResourceClient<typeof VolumeBackupScheduleKind>;
  readonly backups: ResourceClient<typeof VolumeBackupKind>;
  readonly pvbs: ResourceClient<typeof PodVolumeBackupKind>;
  readonly restores: ResourceClient<typeof VolumeRestoreKind>;
  readonly pvrs: ResourceClient<typeof PodVolumeRestoreKind>;
  private readonly recorded: Recorded[] = [];
  private readonly agents = new Map<string, ChildProcess>();
  private controllerChild: ChildProcess | undefined;
  private webhookConfiguration: string | undefined;
  private webhookPort = 0;

  readonly admin: KubeConfig;
  readonly options: SimulatedClusterOptions;

  constructor(admin: KubeConfig, options: SimulatedClusterOptions) {
    this.admin = admin;
    this.options = options;
    this.core = admin.makeApiClient(CoreV1Api);
    const manager = `journey-${options.cluster}`;
    this.repositories = new ResourceClient(admin, BackupRepositoryKind, manager);
    this.schedules = new ResourceClient(admin, VolumeBackupScheduleKind, manager);
    this.backups = new ResourceClient(admin, VolumeBackupKind, manager);
    this.pvbs = new ResourceClient(admin, PodVolumeBackupKind, manager);
    this.restores = new ResourceClient(admin, VolumeRestoreKind, manager);
    this.pvrs = new ResourceClient(admin, PodVolumeRestoreKind, manager);
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /**
   * Arca installed as manifests/ would, but beside the API server: a restore webhook configuration
   * reaching the controller at 127.0.0.1 (the manifests' `arca-restore`, whose Service has no
   * endpoints here, removed), the controller, and an agent on each node.
   */
  async install(nodes: readonly string[]): Promise<void> {
    this.webhookPort = await freePort();
    await this.admin.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name: 'arca-restore' }).catch(() => undefined);
    this.webhookConfiguration = await createWebhookConfiguration(this.admin, this.webhookPort, this.options.webhookConfiguration);
    await this.startController();
    for (const node of nodes) await this.startAgent(node);
  }

  /** A Secret with the repository password and a BackupRepository `name` on `url`, with credentials when given. */
  async addRepository(name: string, password: string, spec: { url: string; readOnly?: boolean; s3?: { endpoint: string; forcePathStyle: boolean } }, credentials?: Record<string, string>): Promise<void> {
    await this.core.createNamespacedSecret({ namespace: this.namespace, body: { metadata: { name: `${name}-password` }, stringData: { password } } });
    if (credentials !== undefined) await this.core.createNamespacedSecret({ namespace: this.namespace, body: { metadata: { name: `${name}-credentials` }, stringData: credentials } });
    await this.repositories.create(this.namespace, {
      metadata: { name },
      spec: {
        ...spec, passwordSecretRef: { name: `${name}-password`, key: 'password' },
        ...(credentials === undefined ? {} : { credentialsSecretRef: { name: `${name}-credentials` } }),
      },
    });
  }

  podsDir(node: string): string {
    return path.join(this.options.root, node, 'pods');
  }

  /** Starts `arca agent` for `node`; resolves once it watches. */
  async startAgent(node: string): Promise<ChildProcess> {
    await mkdir(this.podsDir(node), { recursive: true });
    const agent = this.record(`agent ${node}`, startArca([
      'agent', '--node', node, '--pods-dir', this.podsDir(node), '--cache-dir', path.join(this.options.root, node, 'cache'),
      '--namespace', this.options.namespace, '--kubeconfig', this.options.processKubeconfigs?.agent ?? this.options.kubeconfig, '--metrics-address', '127.0.0.1:0', '--cluster', this.options.cluster,
    ]));
    this.agents.set(node, agent);
    await waitForLine(`agent ${node}`, agent, /"msg":"(started)"/, 60_000);
    return agent;
  }

  /** Ends `node`'s agent: SIGTERM (and SIGKILL after 5 s), or at once with SIGKILL. */
  async stopAgent(node: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const agent = this.agents.get(node);
    this.agents.delete(node);
    if (agent !== undefined) await stopProcess(agent, signal);
  }

  /** Starts `arca controller`, its webhook where the webhook configuration reaches it; resolves once it is ready. */
  async startController(): Promise<void> {
    if (this.webhookConfiguration === undefined) throw new Error('install() first: the controller needs its webhook configuration');
    const controller = await startControllerProcess(controllerArgs(this.options.processKubeconfigs?.controller ?? this.options.kubeconfig, this.options.namespace, this.webhookConfiguration, this.webhookPort));
    this.controllerChild = controller.child;
    this.recorded.push({ name: 'controller', child: controller.child, get output() { return controller.output(); } });
    if (this.options.restartExitedController === true) {
      controller.child.once('exit', () => {
        // Not stopped by stopController() or stop(): the kubelet starts the container again.
        if (this.controllerChild === controller.child) void this.startController();
      });
    }
  }

  /** Ends the controller: SIGTERM (and SIGKILL after 5 s), or at once with SIGKILL, as a lost leader. */
  async stopController(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const controller = this.controllerChild;
    this.controllerChild = undefined;
    if (controller !== undefined) await stopProcess(controller, signal);
  }

  /** The kubelet's part once a pod is on `node`: its volume directories, by volume name. */
  async mountVolumes(node: string, pod: V1Pod, dirs: VolumeDirs): Promise<Record<string, string>> {
    const made: Record<string, string> = {};
    for (const [volume, rel] of Object.entries(dirs)) {
      made[volume] = path.join(this.podsDir(node), pod.metadata?.uid ?? '', 'volumes', rel);
      await mkdir(made[volume], { recursive: true });
    }
    return made;
  }

  /** The pod's status as the kubelet reports it: its phase and, while it has them, its running init containers. */
  async setPhase(pod: V1Pod, phase: string, runningInit: readonly string[] = []): Promise<void> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    const current = await this.core.readNamespacedPod({ namespace, name });
    const initContainerStatuses = runningInit.map((c) => ({ name: c, image: 'arca:test', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date() } } }));
    await this.core.replaceNamespacedPodStatus({ namespace, name, body: { metadata: current.metadata, spec: current.spec, status: { phase, initContainerStatuses } } });
  }

  /** A pod created, then scheduled to `node` (bound, as the scheduler does), its volumes mounted, Running. */
  async runPod(namespace: string, node: string, body: V1Pod, dirs: VolumeDirs): Promise<{ pod: V1Pod; volumes: Record<string, string> }> {
    const pod = await this.core.createNamespacedPod({ namespace, body });
    await this.bind(pod, node);
    const volumes = await this.mountVolumes(node, pod, dirs);
    await this.setPhase(pod, 'Running');
    return { pod, volumes };
  }

  /** The scheduler's part: the pod is bound to `node`. */
  async bind(pod: V1Pod, node: string): Promise<void> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    await this.core.createNamespacedPodBinding({ namespace, name, body: { metadata: { name }, target: { kind: 'Node', name: node } } });
  }

  /**
   * A pod held for a restore, scheduled to `node`: bound, its (empty) volumes mounted, and its
   * injected init container run as `arca restore-wait` with the node's directories for its mounts,
   * reported running; the pod Running once that exits 0. Resolves with the volumes' directories and the init container's outcome.
   */
  async startHeldPod(pod: V1Pod, node: string, dirs: VolumeDirs): Promise<{ volumes: Record<string, string>; initContainer: Promise<RunResult> }> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    await this.bind(pod, node);
    const volumes = await this.mountVolumes(node, pod, dirs);
    const init = pod.spec?.initContainers?.find((c) => c.name === RESTORE_INIT_CONTAINER);
    if (init === undefined) throw new Error(`pod ${namespace}/${name} has no ${RESTORE_INIT_CONTAINER} init container`);
    const hostPathOf = new Map((init.volumeMounts ?? []).map((m) => [m.mountPath, volumes[m.name] ?? '']));
    const child = this.record(`restore-wait ${name}`, startArca((init.args ?? []).map((arg) => hostPathOf.get(arg) ?? arg)));
    // Once it exits 0 the pod's own containers start: Running.
    const initContainer = collectOutput(child).then(async (result) => {
      if (result.code === 0) await this.setPhase(pod, 'Running');
      return result;
    });
    await this.setPhase(pod, 'Pending', [RESTORE_INIT_CONTAINER]);
    return { volumes, initContainer };
  }

  /**
   * The kubelet's part for a Job: its init containers, then its containers, run in order as `arca`
   * with the Job's arguments and environment (values, Secret keys, whole Secrets), each emptyDir a
   * fresh directory and each hostPath its path; then the Job's status, Complete or Failed, as the
   * Job controller would write it. Resolves with each container's outcome.
   */
  async runJob(job: V1Job): Promise<{ name: string; result: RunResult }[]> {
    const namespace = job.metadata?.namespace ?? this.namespace;
    const pod = job.spec?.template.spec;
    const dirs = new Map<string, string>();
    for (const volume of pod?.volumes ?? []) {
      dirs.set(volume.name, volume.hostPath?.path ?? await mkdtemp(path.join(this.options.root, `job-${volume.name}-`)));
    }
    const results: { name: string; result: RunResult }[] = [];
    let failed = false;
    for (const container of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
      const hostPathOf = new Map((container.volumeMounts ?? []).map((m) => [m.mountPath, dirs.get(m.name) ?? '']));
      const env = await this.containerEnv(namespace, container);
      for (const [name, value] of Object.entries(env)) env[name] = hostPathOf.get(value) ?? value;
      const child = this.record(`job ${job.metadata?.name ?? ''} ${container.name}`, startArca((container.args ?? []).map((a) => hostPathOf.get(a) ?? a), { env }));
      const result = await collectOutput(child);
      results.push({ name: container.name, result });
      if (result.code !== 0) { failed = true; break; }
    }
    const now = new Date();
    const current = await this.admin.makeApiClient(BatchV1Api).readNamespacedJob({ namespace, name: job.metadata?.name ?? '' });
    const conditions = failed
      ? [{ type: 'FailureTarget', status: 'True', lastTransitionTime: now }, { type: 'Failed', status: 'True', lastTransitionTime: now }]
      : [{ type: 'SuccessCriteriaMet', status: 'True', lastTransitionTime: now }, { type: 'Complete', status: 'True', lastTransitionTime: now }];
    await this.admin.makeApiClient(BatchV1Api).replaceNamespacedJobStatus({
      namespace, name: current.metadata?.name ?? '',
      body: { metadata: current.metadata, spec: current.spec, status: { startTime: now, ...(failed ? { failed: 1 } : { succeeded: 1, completionTime: now }), conditions } },
    });
    return results;
  }

  private async containerEnv(namespace: string, container: V1Container): Promise<Record<string, string>> {
    const secret = async (name: string): Promise<Record<string, string>> => {
      const data = (await this.core.readNamespacedSecret({ namespace, name })).data ?? {};
      return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    };
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) if (from.secretRef?.name !== undefined) Object.assign(env, await secret(from.secretRef.name));
    for (const { name, value, valueFrom } of container.env ?? []) {
      const ref = valueFrom?.secretKeyRef;
      const resolved = ref?.name === undefined ? value : (await secret(ref.name))[ref.key];
      if (resolved !== undefined) env[name] = resolved;
    }
    return env;
  }

  /** The processes still running, by name: for measuring them (their pids). */
  running(): { name: string; pid: number }[] {
    return this.recorded.filter(({ child }) => child.exitCode === null && child.signalCode === null && child.pid !== undefined)
      .map(({ name, child }) => ({ name, pid: child.pid ?? 0 }));
  }

  /** What every process said (the end of it), and whether it still runs: for a failed journey's report. */
  report(): string {
    return this.recorded.map(({ name, child, output }) => {
      const state = child.exitCode !== null || child.signalCode !== null ? `exited ${String(child.exitCode ?? child.signalCode)}` : 'running';
      const tail = output.length > REPORT_TAIL_CHARS ? `…${output.slice(-REPORT_TAIL_CHARS)}` : output;
      return `===== ${name} (${state}) =====\n${tail}`;
    }).join('\n');
  }

  /** Stops every process and removes the webhook configuration. */
  async stop(): Promise<void> {
    this.controllerChild = undefined;
    await Promise.all(this.recorded.map(({ child }) => stopChild(child)));
    this.agents.clear();
    if (this.webhookConfiguration !== undefined) await deleteWebhookConfiguration(this.admin, this.webhookConfiguration);
    this.webhookConfiguration = undefined;
  }

  private record(name: string, child: ChildProcess): ChildProcess {
    const entry: Recorded = { name, child, output: '' };
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { entry.output += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { entry.output += d; });
    this.recorded.push(entry);
    return child;
  }
}

async function stopProcess(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (signal === 'SIGTERM') return stopChild(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve(); }); });
  child.kill('SIGKILL');
  await exited;
}

const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

/** The VolumeBackup or VolumeRestore once it ended (Completed, PartiallyFailed or Failed). */
export async function final<K extends typeof VolumeBackupKind | typeof VolumeRestoreKind>(
  client: ResourceClient<K>, namespace: string, name: string,
): ReturnType<ResourceClient<K>['get']> {
  return until(async () => {
    const object = await client.get(namespace, name);
    return FINAL.has(object.status?.phase ?? '') ? object : undefined;
  }, 200);
}

