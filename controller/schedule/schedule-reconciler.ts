// VolumeBackupSchedule: at each cron slot, one VolumeBackup named after the slot; missed slots
// (the controller was down) collapse into the newest one; nothing while paused.
import type { VolumeBackupSchedule } from '../../kube/api/kinds.ts';
import { updateStatus } from '../../kube/status.ts';
import { RepositoryAccessError } from '../../repository-access/errors.ts';
import { createIfMissing, type ControllerContext } from '../context.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { applyRetention, RetentionError, retentionPolicyOf } from './retention.ts';
import { cronSlots, ScheduleError, slotBackupName } from './slots.ts';

type Status = NonNullable<VolumeBackupSchedule['status']>;
/** On each VolumeBackup a schedule made: the schedule's name. */
export const SCHEDULE_LABEL = 'arca.dev/schedule';
/** A slot's backup name must fit the 63 characters of a label value. */
const MAX_NAME = 63 - '-yyyymmddhhmmss'.length;

export async function reconcileSchedule(ctx: ControllerContext, name: string): Promise<ReconcileResult> {
  const schedule = ctx.caches.schedules.get(name, ctx.namespace);
  if (schedule === undefined || schedule.metadata.deletionTimestamp !== undefined) return undefined;
  if (name.length > MAX_NAME) return writeStatus(ctx, schedule, { message: `The name is longer than ${MAX_NAME} characters, too long for its backups' names; recreate it with a shorter name.` });
  let slots;
  try {
    slots = cronSlots(schedule.spec.schedule, schedule.spec.timeZone);
  } catch (err) {
    if (err instanceof ScheduleError) return writeStatus(ctx, schedule, { message: err.message });
    throw err;
  }
  const now = ctx.now();
  const next = slots.next(now);
  if (schedule.spec.paused === true) return writeStatus(ctx, schedule, { message: 'Paused.', nextScheduleTime: undefined });

  const latest = slots.latest(now);
  const created = Date.parse(schedule.metadata.creationTimestamp ?? '') || 0;
  const last = Date.parse(schedule.status?.lastScheduleTime ?? '') || 0;
  const change: Status = { message: undefined, nextScheduleTime: next?.toISOString() };
  if (latest !== undefined && latest.getTime() > last && latest.getTime() >= created - 1_000) {
    const backupName = slotBackupName(name, latest);
    const { repository, includedNamespaces, excludedNamespaces, labelSelector, defaultVolumesToBackup, tags } = schedule.spec;
    await createIfMissing(() => ctx.clients.backups.create(ctx.namespace, {
      // No owner reference: a backup set outlives the schedule that made it.
      metadata: { name: backupName, labels: { [SCHEDULE_LABEL]: name } },
      spec: { repository, includedNamespaces, excludedNamespaces, labelSelector, defaultVolumesToBackup, tags },
    }));
    Object.assign(change, { lastScheduleTime: latest.toISOString(), lastBackup: backupName });
    ctx.log.info({ schedule: name, backup: backupName, slot: latest.toISOString() }, 'scheduled a backup');
  }
  Object.assign(change, await retentionAfterRun(ctx, schedule));
  await writeStatus(ctx, schedule, change);
  return next === undefined ? undefined : { requeueAfterMs: Math.max(next.getTime() - now.getTime(), 0) + 50 };
}

const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);

/** Once the last run's backup is final and retention has not run since: the policy, applied. */
async function retentionAfterRun(ctx: ControllerContext, schedule: VolumeBackupSchedule): Promise<Status> {
  const retention = schedule.spec.retention;
  const last = ctx.caches.backups.get(schedule.status?.lastBackup ?? '', ctx.namespace);
  if (retention === undefined || last === undefined || !FINAL.has(last.status?.phase ?? '')) return {};
  const finished = Date.parse(last.status?.completionTimestamp ?? '') || 0;
  if ((Date.parse(schedule.status?.lastRetentionTime ?? '') || 0) >= finished) return {};
  if (ctx.caches.repositories.get(schedule.spec.repository, ctx.namespace)?.spec.readOnly === true) {
    return { message: `BackupRepository ${schedule.spec.repository} is read-only in this cluster; retention is not applied.` };
  }
  try {
    const labels = { schedule: schedule.metadata.name ?? '' };
    const forgotten = await ctx.metrics.retention.time(labels, () => applyRetention(ctx, schedule, retentionPolicyOf(retention)));
    ctx.metrics.forgottenSnapshots.inc({ ...labels, repository: schedule.spec.repository }, forgotten.length);
  } catch (err) {
    if (err instanceof RetentionError) return { message: err.message };
    // The repository cannot be opened: said here, and tried again after the next run.
    if (err instanceof RepositoryAccessError) return { message: `Retention not applied: ${err.message}` };
    throw err;
  }
  return { lastRetentionTime: ctx.now().toISOString() };
}

async function writeStatus(ctx: ControllerContext, schedule: VolumeBackupSchedule, change: Status): Promise<undefined> {
  const merge = (status: Status): Status => JSON.parse(JSON.stringify({ ...status, ...change })) as Status;
  const current = schedule.status ?? {};
  if (JSON.stringify(merge(current)) === JSON.stringify(current)) return undefined;
  await updateStatus(ctx.clients.schedules, schedule, merge);
  return undefined;
}
