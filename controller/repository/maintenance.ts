// Maintenance of a repository on its cron: one run per slot (missed slots collapse into the
// newest), never while another of its runs goes on; the last run's outcome in the status. A run
// is a Kubernetes Job, except for a local-path repository, which only the controller that opened
// it is known to reach: its runs go on inside the controller (local-maintenance.ts).
import { schemeOf } from '../../engine/index.ts';
import type { BackupRepository } from '../../kube/api/kinds.ts';
import { createIfMissing, type ControllerContext } from '../context.ts';
import { cronSlots, ScheduleError } from '../schedule/slots.ts';
import { jobRun, maintenanceJob, maintenanceJobName, MAINTENANCE_LABEL, type MaintenanceRun } from './maintenance-job.ts';

type Status = NonNullable<BackupRepository['status']>;

/** How often a running maintenance Job is looked at again (a run inside the controller requeues when it ends). */
const RUNNING_POLL_MS = 15_000;

export interface MaintenanceStep {
  change: Status;
  /** When to look again (the next slot, or sooner while a Job runs). */
  requeueAfterMs: number | undefined;
}

/** True for a repository on a path of the controller's file system rather than in object storage. */
export function maintainedInController(repository: BackupRepository): boolean {
  return schemeOf(repository.spec.url) === 'local';
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
  const inController = maintainedInController(repository);
  const runs = inController
    ? ctx.localMaintenance.runsOf(name)
    : (await ctx.clients.batch.listNamespacedJob({ namespace: ctx.namespace, labelSelector: `${MAINTENANCE_LABEL}=${name}` })).items.map(jobRun);
  const change = lastResult(ctx, repository, runs, inController);
  const running = runs.filter((r) => r.outcome === 'Running');
  // A Job is polled; a run in the controller requeues the repository itself when it ends.
  const poll = inController ? untilNext : RUNNING_POLL_MS;

  const latest = slots.latest(now);
  const created = Date.parse(repository.metadata.creationTimestamp ?? '') || 0;
  const runName = latest === undefined ? undefined : maintenanceJobName(name, latest);
  const due = latest !== undefined && latest.getTime() >= created - 1_000 && runName !== repository.status?.lastMaintenanceJob;
  if (!due || runName === undefined) return { change, requeueAfterMs: running.length > 0 ? poll : untilNext };
  if (running.some((r) => r.name !== runName)) {
    // Never two at once: this slot waits for the running one (and is dropped if the next slot comes first).
    ctx.log.info({ repository: name, running: running.map((r) => r.name) }, 'maintenance still running; the slot waits');
    return { change, requeueAfterMs: poll };
  }
  if (inController) {
    const settings = { maxUnusedPercent: maintenance.pruneMaxUnusedPercent ?? 5, readDataSubset: maintenance.checkReadDataSubset ?? '5%' };
    ctx.localMaintenance.start(name, runName, () => ctx.repositories.optionsOf(name), settings);
    ctx.log.info({ repository: name, run: runName }, 'started repository maintenance in the controller (a local-path repository)');
    await ctx.events.normal(repository, 'MaintenanceStarted', 'Maintain', `The controller runs prune and check itself (${runName}): a local-path repository is reachable only where it is mounted.`);
  } else if (await createIfMissing(() => ctx.clients.batch.createNamespacedJob({ namespace: ctx.namespace, body: maintenanceJob(repository, runName, ctx.maintenance) }))) {
    ctx.log.info({ repository: name, job: runName }, 'started repository maintenance');
    await ctx.events.normal(repository, 'MaintenanceStarted', 'Maintain', `Job ${runName} runs prune and check.`);
  }
  return { change: { ...change, lastMaintenanceJob: runName }, requeueAfterMs: poll };
}

/**
 * The outcome of the last run started, once it finished: lastMaintenanceTime, the Maintained
 * condition, and the maintenance metrics (once per run: a run already in the condition is not
 * counted again, also by a newly elected controller).
 */
function lastResult(ctx: ControllerContext, repository: BackupRepository, runs: readonly MaintenanceRun[], inController: boolean): Status {
  const last = repository.status?.lastMaintenanceJob;
  if (last === undefined) return {};
  const previous = repository.status?.conditions?.find((c) => c.type === 'Maintained');
  const recorded = previous?.message?.includes(last) === true;
  let run = runs.find((r) => r.name === last);
  if (run === undefined) {
    // A run inside a controller that stopped (restart, another leader) ended with it.
    if (!inController || recorded) return {};
    run = { name: last, outcome: 'Failed', message: 'the controller running it stopped before it ended; the next slot runs again' };
  }
  if (run.outcome === 'Running') return {};
  const time = (run.completionTime ?? ctx.now()).toISOString();
  const status = run.outcome === 'Succeeded' ? 'True' : 'False';
  const message = inController ? `Run ${last} in the controller: ${run.message ?? ''}` : run.message ?? '';
  if (!recorded) {
    const seconds = run.startTime === undefined || run.completionTime === undefined ? 0 : (run.completionTime.getTime() - run.startTime.getTime()) / 1000;
    ctx.metrics.maintenance.recordOnce(last, { repository: repository.metadata.name ?? '' }, run.outcome === 'Succeeded' ? 'success' : 'failure', seconds, run.completionTime);
  }
  const condition = {
    type: 'Maintained', status, reason: run.outcome, message,
    lastTransitionTime: previous?.status === status && recorded ? previous.lastTransitionTime : time,
  } as const;
  return {
    lastMaintenanceTime: time,
    conditions: [...(repository.status?.conditions ?? []).filter((c) => c.type !== 'Maintained'), condition],
  };
}
