/** The agent's own metrics, beside the watch caches' `arca_watched_objects{kind,phase}`. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobQueue } from './job-queue.ts';

export interface AgentMetrics {
  /** Jobs that reached a final phase. */
  readonly jobs: Counter<'kind' | 'phase'>;
  /** Bytes read (backups) or written (restores) by finished jobs. */
  readonly bytes: Counter<'kind'>;
  readonly duration: Histogram<'kind' | 'phase'>;
  /** Failures by error code (ARCA_AGENT_*, ARCA_ERR_*, or "unknown"). */
  readonly errors: Counter<'kind' | 'code'>;
}

export function registerAgentMetrics(registry: Registry, queue: JobQueue): AgentMetrics {
  new Gauge({
    name: 'arca_agent_jobs_active',
    help: 'Volume jobs running or waiting for a slot on this node.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.set({ state: 'running' }, queue.runningCount);
      this.set({ state: 'waiting' }, queue.waitingCount);
    },
  });
  return {
    jobs: new Counter({ name: 'arca_agent_jobs_total', help: 'Volume jobs finished, by kind and final phase.', labelNames: ['kind', 'phase'], registers: [registry] }),
    bytes: new Counter({ name: 'arca_agent_job_bytes_total', help: 'Bytes read by backups and written by restores.', labelNames: ['kind'], registers: [registry] }),
    duration: new Histogram({
      name: 'arca_agent_job_duration_seconds', help: 'Time from a job\'s start to its final phase.', labelNames: ['kind', 'phase'], registers: [registry],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 14400],
    }),
    errors: new Counter({ name: 'arca_agent_job_errors_total', help: 'Failed volume jobs, by error code.', labelNames: ['kind', 'code'], registers: [registry] }),
  };
}
