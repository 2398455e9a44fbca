import Type from 'typebox';
import { Cron, Duration, Name, TimeZone, Timestamp } from './fields.ts';
import { backupSelection } from './volume-backup.ts';

const keep = (what: string) => Type.Optional(Type.Integer({ minimum: 0, description: `Keep the newest snapshot of each of this many ${what}.` }));

export const RetentionPolicy = Type.Object({
  keepLast: Type.Optional(Type.Integer({ minimum: 0, description: 'Keep the newest N snapshots.' })),
  keepHourly: keep('hours'),
  keepDaily: keep('days'),
  keepWeekly: keep('weeks'),
  keepMonthly: keep('months'),
  keepYearly: keep('years'),
  keepWithin: Type.Optional(Duration('Keep every snapshot younger than this.')),
}, { description: 'Applied per volume after each run; snapshots no rule keeps are forgotten.' });

export const VolumeBackupScheduleSpec = Type.Object({
  schedule: Cron('Five-field cron expression (or @daily, @hourly, ...).'),
  timeZone: Type.Optional(TimeZone()),
  ...backupSelection,
  retention: Type.Optional(RetentionPolicy),
  paused: Type.Optional(Type.Boolean({ description: 'No new VolumeBackups while true.' })),
});

export const VolumeBackupScheduleStatus = Type.Object({
  lastScheduleTime: Type.Optional(Timestamp('The slot of the last VolumeBackup created.')),
  nextScheduleTime: Type.Optional(Timestamp('The next slot.')),
  lastBackup: Type.Optional(Name('The last VolumeBackup created.')),
  lastRetentionTime: Type.Optional(Timestamp('When retention was last applied.')),
  message: Type.Optional(Type.String()),
});
