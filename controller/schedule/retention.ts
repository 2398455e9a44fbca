// A schedule's retention policy, applied per volume after each run: the snapshots of the
// schedule's backup sets are grouped by the volume they are of (the same identity a backup uses
// to find its parent), the policy decides within each group, the rest are forgotten and the
// objects that stood for them removed.
import { applyPolicy, forgetSnapshots, type RetentionPolicy, type StoredSnapshot } from '../../engine/index.ts';
import type { VolumeBackupSchedule } from '../../kube/api/kinds.ts';
import { parseDuration } from '../../kube/duration.ts';
import { metadataFromLabels, volumeIdentityLabels } from '../../repository-access/snapshot-labels.ts';
import { removeForgottenObjects } from '../backup/forgotten-objects.ts';
import type { ControllerContext } from '../context.ts';

export class RetentionError extends Error {
  override readonly name = 'RetentionError';
  readonly code = 'ARCA_BAD_RETENTION';
}

/** The engine's policy from the schedule's; a policy that keeps nothing is refused (it would forget everything). */
export function retentionPolicyOf(spec: NonNullable<VolumeBackupSchedule['spec']['retention']>): RetentionPolicy {
  const withinHours = spec.keepWithin === undefined ? 0 : Math.ceil(parseDuration(spec.keepWithin, 'retention.keepWithin') / 3_600_000);
  const policy: RetentionPolicy = {
    last: spec.keepLast, hourly: spec.keepHourly, daily: spec.keepDaily, weekly: spec.keepWeekly, monthly: spec.keepMonthly, yearly: spec.keepYearly,
    within: withinHours > 0 ? { years: 0, months: 0, days: 0, hours: withinHours } : undefined,
  };
  const counts = [policy.last, policy.hourly, policy.daily, policy.weekly, policy.monthly, policy.yearly];
  if (counts.every((n) => (n ?? 0) === 0) && policy.within === undefined) {
    throw new RetentionError('spec.retention keeps nothing and would forget every snapshot; set keepLast, another keep count or keepWithin.');
  }
  return policy;
}

/** The snapshots of the schedule's backup sets (named `<schedule>-<slot>`), grouped per volume. */
export function volumeGroups(snapshots: readonly StoredSnapshot[], schedule: string): StoredSnapshot[][] {
  const groups = new Map<string, StoredSnapshot[]>();
  for (const s of snapshots) {
    const meta = metadataFromLabels(s.snapshot.labels);
    if (meta === undefined || !isSlotOf(meta.backupSet, schedule)) continue;
    const key = JSON.stringify(Object.entries(volumeIdentityLabels(meta)).sort(([a], [b]) => a.localeCompare(b)));
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups.values()];
}

function isSlotOf(backupSet: string, schedule: string): boolean {
  return backupSet.length === schedule.length + 15 && backupSet.startsWith(`${schedule}-`) && /^\d{14}$/.test(backupSet.slice(-14));
}

/** Applies the policy in the repository; returns the IDs forgotten. */
export async function applyRetention(ctx: ControllerContext, schedule: VolumeBackupSchedule, policy: RetentionPolicy): Promise<string[]> {
  const name = schedule.metadata.name ?? '';
  const repository = schedule.spec.repository;
  const listedAt = ctx.now();
  const acquired = await ctx.repositories.acquire(repository);
  let snapshots: StoredSnapshot[];
  let forgotten: Set<string>;
  try {
    snapshots = await acquired.repo.listSnapshots();
    forgotten = new Set(volumeGroups(snapshots, name).flatMap((group) => applyPolicy(group, policy, listedAt).filter((d) => !d.keep).map((d) => d.snapshot.id)));
    await forgetSnapshots(acquired.repo, [...forgotten]);
  } finally {
    await acquired.release();
  }
  const left = snapshots.filter((s) => !forgotten.has(s.id));
  await removeForgottenObjects(ctx, repository, {
    snapshots: new Set(left.map((s) => s.id)), sets: new Set(left.flatMap((s) => metadataFromLabels(s.snapshot.labels)?.backupSet ?? [])), listedAt: listedAt.getTime(),
  });
  if (forgotten.size > 0) ctx.log.info({ schedule: name, repository, forgotten: forgotten.size }, 'retention forgot snapshots');
  return [...forgotten];
}
