// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a candidate takes the
// Lease when it is free or its holder has not renewed it for a lease duration (measured on our
// clock from when we last saw it change, so clock skew between nodes does not matter); the leader
// renews it every retry period and gives up leadership if it cannot for a renew deadline. Every
// write is conditional on the resourceVersion, so two candidates never both win.
// (client-node 2.0.1 ships no elector.)
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpStatusOf } from './errors.ts';
import type { Logger } from './logger.ts';

export interface LeaderElectionConfig {
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate, unique among replicas (pod name plus a random suffix). */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  /** Leadership gained; `lost` aborts when it ends (lost, or released on shutdown). */
  onStartedLeading(lost: AbortSignal): void;
  /** Leadership lost without our asking (renewals failed for the renew deadline). */
  onLostLeadership(): void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly config: LeaderElectionConfig;
  private readonly log: Logger;
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private leading = false;

  constructor(kc: KubeConfig, config: LeaderElectionConfig, log: Logger) {
    if (config.renewDeadlineMs >= config.leaseDurationMs || config.retryPeriodMs >= config.renewDeadlineMs) {
      throw new RangeError('Leader election needs retry period < renew deadline < lease duration');
    }
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.config = config;
    this.log = log;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until `stop` aborts, leading whenever it holds the Lease. On stop, a leader releases
   * the Lease so another replica takes over at once. Resolves when stopped or leadership is lost.
   */
  async run(stop: AbortSignal, callbacks: LeaderCallbacks): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.config;
    while (!stop.aborted && !(await this.tryAcquireOrRenew())) await pause(retryPeriodMs, stop);
    if (isAborted(stop)) return;
    this.leading = true;
    const lost = new AbortController();
    this.log.info({ lease: `${this.config.namespace}/${this.config.name}`, identity: this.config.identity }, 'became the leader');
    callbacks.onStartedLeading(lost.signal);
    let lastRenew = Date.now();
    while (!stop.aborted) {
      await pause(retryPeriodMs, stop);
      if (isAborted(stop)) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew >= renewDeadlineMs) {
        this.leading = false;
        this.log.error({ lease: `${this.config.namespace}/${this.config.name}` }, 'lost leadership: the lease could not be renewed in time');
        lost.abort(new Error('leadership lost'));
        callbacks.onLostLeadership();
        return;
      }
    }
    this.leading = false;
    lost.abort(new Error('shutting down'));
    await this.release();
  }

  /** One attempt; true when we hold the Lease afterwards. Failures are logged and answered false. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.config;
    const leaseDurationSeconds = Math.ceil(this.config.leaseDurationMs / 1000);
    const now = new V1MicroTime();
    try {
      let lease: V1Lease;
      try {
        lease = await this.api.readNamespacedLease({ namespace, name });
      } catch (err) {
        if (httpStatusOf(err) !== 404) throw err;
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const renewTime = spec.renewTime?.toISOString() ?? '';
      if (this.observed?.holder !== holder || this.observed.renewTime !== renewTime) this.observed = { holder, renewTime, at: Date.now() };
      const heldByOther = holder !== '' && holder !== identity;
      const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (heldByOther && Date.now() < this.observed.at + duration) return false;
      const taking = holder !== identity;
      await this.api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          metadata: lease.metadata, // its resourceVersion makes the write conditional
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            renewTime: now,
            acquireTime: taking ? now : spec.acquireTime,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && holder !== '' ? 1 : 0),
          },
        },
      });
      return true;
    } catch (err) {
      // 409: another candidate wrote first; anything else: try again next period.
      if (httpStatusOf(err) !== 409) this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'leader election: lease request failed');
      return false;
    }
  }

  /** Hands the Lease back (empty holder, expired) so a standby takes over without waiting. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.config;
    try {
      const lease = await this.api.readNamespacedLease({ namespace, name });
      if (lease.spec?.holderIdentity !== identity) return;
      await this.api.replaceNamespacedLease({
        namespace, name, body: { metadata: lease.metadata, spec: { holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(), leaseTransitions: lease.spec.leaseTransitions } },
      });
      this.log.info({ lease: `${namespace}/${name}` }, 'released leadership');
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not release the lease; it expires by itself');
    }
  }
}

// A call, not a property read: TypeScript would keep `signal.aborted` narrowed across awaits.
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}
