// What the controller's periodic repository work did, for /metrics: runs by outcome, the last
// success (alert when it grows old), durations, and the snapshots it turned into objects or forgot.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type Outcome = 'success' | 'failure';

/** Seconds: a sync of a few sets takes well under one; a prune or check of a large repository, hours. */
const DURATION_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 14_400];

/** Runs, last success and duration of one kind of work, labelled by what it is about. */
export class OperationMetrics<L extends string> {
  private readonly runs: Counter<L | 'outcome'>;
  private readonly lastSuccess: Gauge<L>;
  private readonly duration: Histogram<L | 'outcome'>;
  private readonly recorded = new Set<string>();

  constructor(registry: Registry, operation: string, label: L, what: string) {
    this.runs = new Counter({ name: `arca_${operation}_runs_total`, help: `${what}, by outcome.`, labelNames: [label, 'outcome'], registers: [registry] });
    this.lastSuccess = new Gauge({ name: `arca_${operation}_last_success_timestamp_seconds`, help: `When the last successful ${operation} ended (Unix time).`, labelNames: [label], registers: [registry] });
    this.duration = new Histogram({ name: `arca_${operation}_duration_seconds`, help: `How long each ${operation} took.`, labelNames: [label, 'outcome'], buckets: DURATION_BUCKETS, registers: [registry] });
  }

  /** Records a run that ended at `end` after `seconds`. */
  record(labels: Record<L, string>, outcome: Outcome, seconds: number, end = new Date()): void {
    const withOutcome = { ...labels, outcome } as Record<L | 'outcome', string>;
    this.runs.inc(withOutcome);
    this.duration.observe(withOutcome, Math.max(seconds, 0));
    if (outcome === 'success') this.lastSuccess.set(labels, end.getTime() / 1000);
  }

  /**
   * Records the run `key` unless this process recorded it already (a reconcile that read a
   * status older than its own last write must not count a run twice).
   */
  recordOnce(key: string, labels: Record<L, string>, outcome: Outcome, seconds: number, end?: Date): void {
    if (this.recorded.has(key)) return;
    this.recorded.add(key);
    // Only recent keys matter: a stale read lags by moments, not by hundreds of runs.
    if (this.recorded.size > 1_000) this.recorded.delete(this.recorded.values().next().value ?? key);
    this.record(labels, outcome, seconds, end);
  }

  /** Runs `work`, recording its outcome and duration; its error is rethrown. */
  async time<T>(labels: Record<L, string>, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.record(labels, 'success', (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      this.record(labels, 'failure', (performance.now() - started) / 1000);
      throw err;
    }
  }
}

export interface ControllerMetrics {
  sync: OperationMetrics<'repository'>;
  /** PodVolumeBackups sync created from snapshots, and objects it removed because their snapshots are gone. */
  syncedSnapshots: Counter<'repository'>;
  syncRemovedBackupSets: Counter<'repository'>;
  retention: OperationMetrics<'schedule'>;
  forgottenSnapshots: Counter<'schedule' | 'repository'>;
  maintenance: OperationMetrics<'repository'>;
}

export function createControllerMetrics(registry: Registry): ControllerMetrics {
  return {
    sync: new OperationMetrics(registry, 'sync', 'repository', 'Listings of a repository\'s backup sets into VolumeBackups'),
    syncedSnapshots: new Counter({ name: 'arca_sync_snapshots_synced_total', help: 'Snapshots another cluster (or an earlier controller) wrote that sync made PodVolumeBackups of.', labelNames: ['repository'], registers: [registry] }),
    syncRemovedBackupSets: new Counter({ name: 'arca_sync_backup_sets_removed_total', help: 'VolumeBackups sync removed because their snapshots were forgotten.', labelNames: ['repository'], registers: [registry] }),
    retention: new OperationMetrics(registry, 'retention', 'schedule', 'Retention policies applied after a scheduled backup'),
    forgottenSnapshots: new Counter({ name: 'arca_retention_snapshots_forgotten_total', help: 'Snapshots forgotten by a schedule\'s retention policy.', labelNames: ['schedule', 'repository'], registers: [registry] }),
    maintenance: new OperationMetrics(registry, 'maintenance', 'repository', 'Maintenance runs (prune, then check) that finished'),
  };
}
