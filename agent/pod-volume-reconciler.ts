/**
 * The life of one PodVolumeBackup or PodVolumeRestore on this node, the same for both kinds:
 * New -> Accepted (queued) -> InProgress -> Completed | PartiallyFailed | Failed | Canceled.
 * Level-based: each event is compared with the queue and the object's phase, one step is taken,
 * and a job re-reads its object before it starts. What differs between the kinds (the data path
 * and the final status fields) is a PodVolumeWork.
 *
 * After a crash the next agent finds its jobs InProgress and runs them again from the start (dedup
 * makes that cheap; a backup whose snapshot was already saved takes it, see backupPodVolume), up to
 * maxAttempts; a graceful stop hands running jobs back as Accepted.
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../engine/index.ts';
import type { PodVolumeBackupKind, PodVolumeRestoreKind, Resource } from '../kube/api/kinds.ts';
import type { Static } from '../kube/api/fields.ts';
import { httpStatusOf } from '../kube/errors.ts';
import type { EventRecorder } from '../kube/events.ts';
import { identity, type ResourceClient } from '../kube/resources.ts';
import { updateStatus } from '../kube/status.ts';
import { VolumeJobError } from './errors.ts';
import type { JobQueue } from './job-queue.ts';
import type { AgentMetrics } from './metrics.ts';
import { ProgressWriter, type StatusProgress } from './progress-writer.ts';
import type { Progress } from '../engine/index.ts';

export type PodVolumeKind = typeof PodVolumeBackupKind | typeof PodVolumeRestoreKind;

const FINAL_PHASES = new Set(['Completed', 'PartiallyFailed', 'Failed', 'Canceled']);
type Phase = 'New' | 'Accepted' | 'InProgress' | 'Completed' | 'PartiallyFailed' | 'Failed' | 'Canceled';

/** Fields both kinds' statuses have (kube/api/pod-volume-backup.ts podVolumeProgress). */
interface CommonStatus {
  phase?: Phase;
  message?: string;
  progress?: StatusProgress;
  attempts?: number;
  startTimestamp?: string;
  completionTimestamp?: string;
}

/** Why a job's signal fired: the object's spec.cancel, or the agent stopping. */
export class JobAbort {
  readonly why: 'canceled' | 'stopping';

  constructor(why: 'canceled' | 'stopping') {
    this.why = why;
  }
}

/** What a job reports at its end: its final phase, a message, and the kind's own status fields. */
export interface WorkResult<K extends PodVolumeKind> {
  readonly phase: 'Completed' | 'PartiallyFailed' | 'Canceled';
  readonly message: string;
  readonly status: Partial<Static<K['status']>>;
  /** Bytes read or written, for the metrics. */
  readonly bytes: number;
}

export interface WorkContext<K extends PodVolumeKind> {
  readonly object: Resource<K>;
  readonly pod: V1Pod;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly onProgress: (progress: Progress) => void;
}

/** The kind-specific part: find the volume and run the data path. Throws on failure. */
export type PodVolumeWork<K extends PodVolumeKind> = (context: WorkContext<K>) => Promise<WorkResult<K>>;

export interface ReconcilerOptions<K extends PodVolumeKind> {
  readonly kc: KubeConfig;
  readonly client: ResourceClient<K>;
  readonly node: string;
  readonly queue: JobQueue;
  readonly events: EventRecorder;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
  readonly work: PodVolumeWork<K>;
  /** Starts of one job before it is failed (each agent crash during it costs one). */
  readonly maxAttempts: number;
  readonly progressIntervalMs: number;
  /** How often a running job's pod is looked up: once it is gone (deleted, or replaced by a pod of that name), the job stops. */
  readonly podCheckIntervalMs: number;
}

export class PodVolumeReconciler<K extends PodVolumeKind> {
  private readonly options: ReconcilerOptions<K>;
  private readonly core: CoreV1Api;
  private readonly kind: string;

  constructor(options: ReconcilerOptions<K>) {
    this.options = options;
    this.core = options.kc.makeApiClient(CoreV1Api);
    this.kind = options.client.kind.kind;
  }

  /** An object was added, changed or replayed: take the step its phase calls for. */
  onUpsert(object: Resource<K>): void {
    if (object.spec.node !== this.options.node) return;
    const phase = (object.status)?.phase ?? 'New';
    if (FINAL_PHASES.has(phase)) return;
    const key = this.keyOf(object);
    if (object.spec.cancel === true) {
      if (this.options.queue.cancel(key, new JobAbort('canceled')) !== 'aborted') {
        void this.finish(object, 'Canceled', 'Canceled before it started.', {}).catch((err: unknown) => { this.logWriteError(object, err); });
      }
      return;
    }
    if (this.options.queue.has(key)) return;
    this.options.queue.add({
      key,
      createdAt: new Date(object.metadata.creationTimestamp ?? 0),
      run: (signal) => this.runJob(object, signal),
    });
    if (phase === 'New') {
      void this.write(object, (s) => (s.phase === undefined || s.phase === 'New' ? { ...s, phase: 'Accepted', message: `Queued on node ${this.options.node}.` } : s))
        .catch((err: unknown) => { this.logWriteError(object, err); });
    }
  }

  private keyOf(object: Resource<K>): string {
    const { namespace, name } = identity(object);
    return `${this.kind}/${namespace}/${name}`;
  }

  private async runJob(seen: Resource<K>, signal: AbortSignal): Promise<void> {
    const { namespace, name } = identity(seen);
    const log = this.options.log.child({ kind: this.kind, namespace, name });
    const object = await this.options.client.get(namespace, name).catch((err: unknown) => {
      if (httpStatusOf(err) === 404) return undefined;
      throw err;
    });
    const status = object?.status;
    if (object === undefined || FINAL_PHASES.has(status?.phase ?? 'New')) return;
    if (object.spec.cancel === true) {
      await this.finish(object, 'Canceled', 'Canceled before it started.', {});
      return;
    }
    const attempts = (status?.attempts ?? 0) + 1;
    if (attempts > this.options.maxAttempts) {
      await this.fail(object, undefined, new VolumeJobError('ARCA_AGENT_ATTEMPTS', `Started ${this.options.maxAttempts} times on node ${this.options.node} without finishing (the agent stopped during each attempt); giving up.`), log);
      return;
    }
    const started = Date.now();
    let current = await this.write(object, (s) => ({ ...s, phase: 'InProgress', message: attempts > 1 ? `Attempt ${attempts} (the agent restarted during the last one).` : undefined, attempts, startTimestamp: new Date().toISOString(), progress: undefined }));
    log.info({ attempts }, 'job started');
    const progress = new ProgressWriter(this.options.progressIntervalMs, async (p) => {
      current = await this.write(current, (s) => (s.phase === 'InProgress' ? { ...s, progress: p } : s)).catch((err: unknown) => {
        this.logWriteError(current, err);
        return current;
      });
    });
    let pod: V1Pod | undefined;
    const podGone = new AbortController();
    let podCheck: NodeJS.Timeout | undefined;
    try {
      pod = await this.podOf(current);
      podCheck = this.checkPodWhileRunning(current, podGone);
      void this.options.events.normal(current, 'Started', 'Run', `Started on node ${this.options.node}${attempts > 1 ? ` (attempt ${attempts})` : ''}.`);
      const jobSignal = AbortSignal.any([signal, podGone.signal]);
      const result = await this.options.work({ object: current, pod, signal: jobSignal, logger: log, onProgress: (p) => { progress.report(p); } });
      clearInterval(podCheck);
      await progress.stop();
      if (result.phase === 'Canceled' && podGone.signal.aborted && !signal.aborted) {
        await this.fail(current, undefined, this.podGoneError(podGone.signal.reason), log);
        return;
      }
      if (result.phase === 'Canceled' && signal.reason instanceof JobAbort && signal.reason.why === 'stopping') {
        await this.handBack(current, attempts, log);
        return;
      }
      await this.finish(current, result.phase, result.message, result.status, pod);
      this.options.metrics.bytes.inc({ kind: this.kind }, result.bytes);
      this.options.metrics.duration.observe({ kind: this.kind, phase: result.phase }, (Date.now() - started) / 1000);
      log.info({ phase: result.phase }, result.message);
    } catch (err) {
      clearInterval(podCheck);
      await progress.stop();
      if (signal.aborted && signal.reason instanceof JobAbort && signal.reason.why === 'stopping') {
        await this.handBack(current, attempts, log);
        return;
      }
      if (podGone.signal.aborted && !signal.aborted) {
        await this.fail(current, undefined, this.podGoneError(podGone.signal.reason), log);
        return;
      }
      if (signal.aborted) {
        await this.finish(current, 'Canceled', 'Canceled.', {}, pod);
        return;
      }
      await this.fail(current, pod, err, log);
      this.options.metrics.duration.observe({ kind: this.kind, phase: 'Failed' }, (Date.now() - started) / 1000);
    }
  }

  /** The pod named in the spec, checked to be the same pod (UID) and on this node. */
  private async podOf(object: Resource<K>): Promise<V1Pod> {
    const ref = object.spec.pod;
    const pod = await this.core.readNamespacedPod({ namespace: ref.namespace, name: ref.name }).catch((err: unknown) => {
      if (httpStatusOf(err) === 404) throw new VolumeJobError('ARCA_AGENT_POD_GONE', `Pod ${ref.namespace}/${ref.name} is gone.`, { cause: err });
      throw err;
    });
    if (pod.metadata?.uid !== ref.uid) {
      throw new VolumeJobError('ARCA_AGENT_POD_GONE', `Pod ${ref.namespace}/${ref.name} with UID ${ref.uid} is gone (a pod of that name now has UID ${pod.metadata?.uid ?? '?'}).`);
    }
    if (pod.spec?.nodeName !== this.options.node) {
      throw new VolumeJobError('ARCA_AGENT_WRONG_NODE', `Pod ${ref.namespace}/${ref.name} runs on node ${pod.spec?.nodeName ?? '(none yet)'}, not on ${this.options.node}.`);
    }
    return pod;
  }

  /**
   * Looks the pod up every podCheckIntervalMs while its job runs, and aborts `gone` once it is
   * gone or elsewhere (podOf's error is the reason): its volume is being torn down, so a backup
   * would save part of it and a restore fill a directory no container will see. A lookup that
   * fails otherwise (the API server busy) is tried again at the next tick.
   */
  private checkPodWhileRunning(object: Resource<K>, gone: AbortController): NodeJS.Timeout {
    const timer = setInterval(() => {
      this.podOf(object).catch((err: unknown) => {
        if (err instanceof VolumeJobError) gone.abort(err);
      });
    }, this.options.podCheckIntervalMs);
    timer.unref();
    return timer;
  }

  private podGoneError(reason: unknown): VolumeJobError {
    const why = reason instanceof Error ? reason.message : String(reason);
    const left = this.kind === 'PodVolumeBackup' ? 'no snapshot was written' : 'the volume holds part of the snapshot';
    return new VolumeJobError('ARCA_AGENT_POD_GONE', `${why} The job stopped while running: ${left}.`);
  }

  /** The agent is stopping: back to Accepted (that attempt not counted), to run again when it is back. */
  private async handBack(object: Resource<K>, attempts: number, log: Logger): Promise<void> {
    await this.write(object, (s) => (s.phase === 'InProgress' ? { ...s, phase: 'Accepted', attempts: attempts - 1, message: 'The agent stopped; the job starts again when it is back.', progress: undefined } : s))
      .catch((err: unknown) => { this.logWriteError(object, err); });
    log.info({}, 'job handed back: the agent is stopping');
  }

  private async fail(object: Resource<K>, pod: V1Pod | undefined, err: unknown, log: Logger): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown } | null)?.code;
    this.options.metrics.errors.inc({ kind: this.kind, code: typeof code === 'string' ? code : 'unknown' });
    log.warn({ err: message, code }, 'job failed');
    await this.finish(object, 'Failed', message, {}, pod);
  }

  private async finish(object: Resource<K>, phase: 'Completed' | 'PartiallyFailed' | 'Failed' | 'Canceled', message: string, fields: Partial<Static<K['status']>>, pod?: V1Pod): Promise<void> {
    await this.write(object, (s) => (FINAL_PHASES.has(s.phase ?? 'New') ? s : { ...s, ...fields, phase, message, completionTimestamp: new Date().toISOString() }));
    this.options.metrics.jobs.inc({ kind: this.kind, phase });
    const reason = phase === 'PartiallyFailed' ? 'PartiallyFailed' : phase;
    const record = phase === 'Completed' ? this.options.events.normal.bind(this.options.events) : this.options.events.warning.bind(this.options.events);
    void record(object, reason, 'Run', message);
    if (pod !== undefined && phase !== 'Canceled') {
      void record({ apiVersion: 'v1', kind: 'Pod', metadata: pod.metadata ?? {} }, `Volume${this.kind.replace('PodVolume', '')}${reason}`, 'Run', `Volume ${object.spec.volume}: ${message}`);
    }
  }

  /** A status change through the status subresource, retried on conflicts against a fresh copy. */
  private write(object: Resource<K>, change: (status: CommonStatus) => CommonStatus): Promise<Resource<K>> {
    return updateStatus(this.options.client, object, (status) => change(status as CommonStatus) as Static<K['status']>);
  }

  private logWriteError(object: Resource<K>, err: unknown): void {
    this.options.log.warn({ kind: this.kind, name: object.metadata.name, err: err instanceof Error ? err.message : String(err) }, 'could not write the status; the next event or resync tries again');
  }
}
