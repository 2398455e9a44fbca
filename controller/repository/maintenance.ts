// Maintenance of a repository on its cron: one Job per slot (missed slots collapse into the
// newest), never while another of its Jobs runs; the last Job's outcome in the status.
import type { V1Job } from '@kubernetes/client-node';
import type { BackupRepository } from '../../kube/api/kinds.ts';
import { createIfMissing, type ControllerContext } from '../context.ts';
import { cronSlots, ScheduleError } from '../schedule/slots.ts';
import { jobOutcome, maintenanceJob, maintenanceJobName, MAINTENANCE_LABEL } from './maintenance-job.ts';

type Status = NonNullable<BackupRepository['status']>;

/** How often a running maintenance Job is looked at again. */
const RUNNING_POLL_MS = 15_000;

export interface MaintenanceStep {
  change: Status;
  /** When to look again (the next slot, or sooner while a Job runs). */
  requeueAfterMs: number | undefined;
}

export async function maintain(ctx: ControllerContext, repository: BackupRepository): Promise<MaintenanceStep> {
  const maintenance = repository.spec.maintenance;
  if (maintenance === undefined || maintenance.paused === true || repository.spec.readOnly === true) return { change: {}, requeueAfterMs: undefined };
  const name = repository.metadata.name ?? '';
  let slots;
  try {
    slots = cronSlots(maintenance.schedule, maintenance.timeZone);
  } catch (err) {
    if (err instanceof ScheduleError) return { change: { message: `spec.maintenance: ${err.message}` }, requeueAfterMs: undefined };
    throw err;
  }
  const now = ctx.now();
  const next = slots.next(now);
  const untilNext = next === undefined ? undefined : Math.max(next.getTime() - now.getTime(), 0) + 50;
  const jobs = (await ctx.clients.batch.listNamespacedJob({ namespace: ctx.namespace, labelSelector: `${MAINTENANCE_LABEL}=${name}` })).items;
  const change = lastResult(repository, jobs);
  const running = jobs.filter((j) => jobOutcome(j) === 'Running');

  const latest = slots.latest(now);
  const created = Date.parse(repository.metadata.creationTimestamp ?? '') || 0;
  const jobName = latest === undefined ? undefined : maintenanceJobName(name, latest);
  const due = latest !== undefined && latest.getTime() >= created - 1_000 && jobName !== repository.status?.lastMaintenanceJob;
  if (!due || jobName === undefined) return { change, requeueAfterMs: running.length > 0 ? RUNNING_POLL_MS : untilNext };
  if (running.some((j) => j.metadata?.name !== jobName)) {
    // Never two at once: this slot waits for the running Job (and is dropped if the next slot comes first).
    ctx.log.info({ repository: name, running: running.map((j) => j.metadata?.name) }, 'maintenance still running; the slot waits');
    return { change, requeueAfterMs: RUNNING_POLL_MS };
  }
  if (await createIfMissing(() => ctx.clients.batch.createNamespacedJob({ namespace: ctx.namespace, body: maintenanceJob(repository, jobName, ctx.maintenance) }))) {
    ctx.log.info({ repository: name, job: jobName }, 'started repository maintenance');
    await ctx.events.normal(repository, 'MaintenanceStarted', 'Maintain', `Job ${jobName} runs prune and check.`);
  }
  return { change: { ...change, lastMaintenanceJob: jobName }, requeueAfterMs: RUNNING_POLL_MS };
}

/** The outcome of the last Job started, once it finished: lastMaintenanceTime and the Maintained condition. */
function lastResult(repository: BackupRepository, jobs: readonly V1Job[]): Status {
  const last = repository.status?.lastMaintenanceJob;
  const job = jobs.find((j) => j.metadata?.name === last);
  if (job === undefined) return {};
  const outcome = jobOutcome(job);
  if (outcome === 'Running') return {};
  const finished = job.status?.completionTime ?? job.status?.conditions?.find((c) => c.type === outcome.replace('Succeeded', 'Complete'))?.lastTransitionTime;
  const time = (finished === undefined ? new Date() : new Date(finished)).toISOString();
  const previous = repository.status?.conditions?.find((c) => c.type === 'Maintained');
  const status = outcome === 'Succeeded' ? 'True' : 'False';
  const condition = {
    type: 'Maintained', status, reason: outcome,
    message: outcome === 'Succeeded' ? `Job ${last ?? ''} pruned and checked the repository.` : `Job ${last ?? ''} failed; see its pods' logs (prune, then check).`,
    lastTransitionTime: previous?.status === status && previous.message?.includes(last ?? '') === true ? previous.lastTransitionTime : time,
  } as const;
  return {
    lastMaintenanceTime: time,
    conditions: [...(repository.status?.conditions ?? []).filter((c) => c.type !== 'Maintained'), condition],
  };
}
