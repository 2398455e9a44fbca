// VolumeRestore: labels the target namespaces (the webhook then marks new pods), creates the
// PodVolumeRestores of marked pods once their volumes are mounted (restore-wait runs), counts
// them, and when every volume of the backup set is done (or the restore is canceled or deleted) ends and removes the labels.
import type { PodVolumeBackup, PodVolumeRestore, VolumeRestore } from '../../kube/api/kinds.ts';
import { RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { updateStatus } from '../../kube/status.ts';
import { cancelPodVolumes, createIfMissing, type ControllerContext } from '../context.ts';
import { addFinalizer, removeFinalizer } from '../finalizer.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { labelForRestore, unlabelForRestore } from './namespace-labels.ts';
import { podVolumeRestoresFor } from './pod-volume-restores.ts';
import { restorableBackups, targetNamespaces } from './restore-plan.ts';

type Status = NonNullable<VolumeRestore['status']>;
const FINAL = new Set(['Completed', 'PartiallyFailed', 'Failed']);
/** Label values are at most 63 characters, and the restore's name is one. */
const MAX_NAME = 63;

export async function reconcileVolumeRestore(ctx: ControllerContext, name: string): Promise<ReconcileResult> {
  const { caches, clients, namespace } = ctx;
  const restore = caches.restores.get(name, namespace);
  if (restore === undefined) return undefined;
  const ownPvrs = caches.podVolumeRestores.cached().filter((p) => p.spec.volumeRestore === name);

  if (restore.metadata.deletionTimestamp !== undefined) {
    await cancelPodVolumes(ctx.clients.podVolumeRestores, ctx.namespace, ownPvrs);
    await unlabelForRestore(clients.core, restore.status?.targetNamespaces ?? [], name);
    await removeFinalizer(clients.restores, restore);
    return undefined;
  }
  if (FINAL.has(restore.status?.phase ?? '')) {
    await unlabelForRestore(clients.core, restore.status?.targetNamespaces ?? [], name);
    return undefined;
  }
  await addFinalizer(clients.restores, restore);
  if (restore.spec.cancel === true) {
    await cancelPodVolumes(ctx.clients.podVolumeRestores, ctx.namespace, ownPvrs);
    await unlabelForRestore(clients.core, restore.status?.targetNamespaces ?? [], name);
    await finish(ctx, restore, 'Failed', 'Canceled: volumes not yet restored were stopped and their pods told so.');
    return undefined;
  }
  if (name.length > MAX_NAME) return fail(ctx, restore, `The name is longer than ${MAX_NAME} characters, so it cannot label namespaces; recreate the VolumeRestore with a shorter name.`);

  const backup = caches.backups.get(restore.spec.volumeBackup, namespace);
  if (backup === undefined) return waitFor(ctx, restore, `Waiting for VolumeBackup ${restore.spec.volumeBackup} (in ${namespace}) to exist.`);
  if (!FINAL.has(backup.status?.phase ?? '')) return waitFor(ctx, restore, `Waiting for VolumeBackup ${restore.spec.volumeBackup} to finish.`);

  const restorable = restorableBackups(restore, caches.podVolumeBackups.cached().filter((b) => b.spec.backupSet === restore.spec.volumeBackup));
  const targets = targetNamespaces(restore, restorable);
  const taken: string[] = [];
  for (const target of targets) {
    const holder = await labelForRestore(clients.core, target, name);
    if (holder !== undefined) taken.push(`${target} (by ${holder})`);
  }
  if (taken.length > 0) return waitFor(ctx, restore, `Waiting for namespaces held by other restores: ${taken.join(', ')}.`);

  const repository = restore.spec.repository ?? backup.spec.repository;
  const backupNamed = (pvb: string) => caches.podVolumeBackups.get(pvb, namespace);
  for (const pod of caches.restorePods.cached()) {
    if (pod.metadata?.labels?.[RESTORE_NAMESPACE_LABEL] !== name || pod.metadata.deletionTimestamp !== undefined) continue;
    for (const pvr of podVolumeRestoresFor(restore, repository, pod, backupNamed)) {
      if (pvr.metadata.name !== undefined && caches.podVolumeRestores.get(pvr.metadata.name, namespace) !== undefined) continue;
      await createIfMissing(() => clients.podVolumeRestores.create(namespace, pvr));
    }
  }

  const status = progressOf(restorable, ownPvrs);
  if (status.done) {
    await writeStatus(ctx, restore, { ...status.status, targetNamespaces: targets, completionTimestamp: ctx.now().toISOString() });
    await unlabelForRestore(clients.core, targets, name);
    await ctx.events.normal(restore, status.status.phase ?? 'Completed', 'Restore', status.status.message ?? '');
    return undefined;
  }
  await writeStatus(ctx, restore, { ...status.status, targetNamespaces: targets });
  return undefined;
}

/** Per backed-up volume, the best outcome among its PodVolumeRestores (a replaced pod gets another). */
function progressOf(restorable: readonly PodVolumeBackup[], pvrs: readonly PodVolumeRestore[]): { done: boolean; status: Status } {
  const rank: readonly string[] = ['Completed', 'PartiallyFailed', 'Failed', 'Canceled'];
  let completed = 0;
  let partiallyFailed = 0;
  let failed = 0;
  let pending = 0;
  for (const backup of restorable) {
    const phases = pvrs.filter((p) => p.spec.sourceBackup === backup.metadata.name).map((p): string => p.status?.phase ?? 'New');
    const best = rank.find((phase) => phases.includes(phase));
    if (best === 'Completed') completed++;
    else if (best === 'PartiallyFailed') partiallyFailed++;
    else if (best !== undefined) failed++;
    else pending++;
  }
  const total = restorable.length;
  const volumes = { total, completed, partiallyFailed, failed };
  if (pending > 0) return { done: false, status: { phase: 'InProgress', volumes, message: `${total - pending} of ${total} volumes restored; waiting for their pods and the agents.` } };
  const phase = completed === total ? 'Completed' : completed + partiallyFailed > 0 ? 'PartiallyFailed' : 'Failed';
  return { done: true, status: { phase, volumes, message: `${completed} of ${total} volumes restored${failed > 0 ? `, ${failed} failed` : ''}${partiallyFailed > 0 ? `, ${partiallyFailed} partially` : ''}.` } };
}

async function writeStatus(ctx: ControllerContext, restore: VolumeRestore, change: Status): Promise<void> {
  const current = restore.status ?? {};
  const next: Status = { ...current, ...change, startTimestamp: current.startTimestamp ?? ctx.now().toISOString() };
  if (JSON.stringify(next) === JSON.stringify(current)) return;
  await updateStatus(ctx.clients.restores, restore, (status) => ({ ...status, ...change, startTimestamp: status.startTimestamp ?? next.startTimestamp }));
}

function waitFor(ctx: ControllerContext, restore: VolumeRestore, message: string): Promise<ReconcileResult> {
  return writeStatus(ctx, restore, { phase: restore.status?.phase ?? 'New', message }).then(() => undefined);
}

async function fail(ctx: ControllerContext, restore: VolumeRestore, message: string): Promise<ReconcileResult> {
  await finish(ctx, restore, 'Failed', message);
  await ctx.events.warning(restore, 'Failed', 'Restore', message);
  return undefined;
}

async function finish(ctx: ControllerContext, restore: VolumeRestore, phase: 'Failed', message: string): Promise<void> {
  await writeStatus(ctx, restore, { phase, message, completionTimestamp: ctx.now().toISOString() });
}
