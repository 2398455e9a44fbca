// Cron slots of a schedule (croner, in the schedule's time zone) and the VolumeBackup name each
// slot gets: derived from the slot, so a restarted or newly elected controller that looks at the
// same slot again finds the backup there instead of making a second one.
import { Cron } from 'croner';

export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';
  readonly code = 'ARCA_BAD_SCHEDULE';
}

export interface Slots {
  /** The newest slot at or before `now`. */
  latest(now: Date): Date | undefined;
  /** The first slot after `now`. */
  next(now: Date): Date | undefined;
}

export function cronSlots(schedule: string, timeZone = 'UTC'): Slots {
  let cron: Cron;
  try {
    cron = new Cron(schedule, { timezone: timeZone, paused: true });
    cron.nextRun(new Date());
  } catch (err) {
    throw new ScheduleError(`The schedule "${schedule}" in time zone ${timeZone} cannot be used: ${err instanceof Error ? err.message : String(err)}; fix spec.schedule or spec.timeZone.`);
  }
  return {
    latest: (now) => cron.previousRuns(1, new Date(now.getTime() + 1))[0],
    next: (now) => cron.nextRun(now) ?? undefined,
  };
}

/** `<schedule>-<yyyymmddhhmmss>` of the slot in UTC. */
export function slotBackupName(schedule: string, slot: Date): string {
  return `${schedule}-${slot.toISOString().replace(/\.\d+Z$/, '').replace(/[-:T]/g, '')}`;
}
