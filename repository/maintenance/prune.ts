import { setImmediate } from 'node:timers/promises';
import { decodeBlobTransient } from '../blob/blob-codec.ts';
import { BlobWriter } from '../blob-writer.ts';
import { BlobIndex, forEachIndexPack, IndexFileEncoder, loadIndexFile, type IndexPack, type PackGroups } from '../index/index.ts';
import { DATA_PREFIX, idOfName, leaseName, packName } from '../object-names.ts';
import type { Repository } from '../repository.ts';
import { CorruptObjectError } from '../errors.ts';
import { isLive, Lease, listLeases, type LeaseRecord, type LeaseTiming } from './leases.ts';
import { countPlans, decodePlan, deletePlan, listPlans, planHeader, planOf, setCompleted, writePlan, type PrunePlan, type StoredPlan } from './prune-plan.ts';
import { BlobSet, markSnapshots } from './used-blobs.ts';

export interface PruneOptions {
  /** Repack partly used packs until at most this percentage of pack bytes is unused. */
  readonly maxUnusedPercent: number;
  /** Stop repacking after this many bytes of packs (undefined: no limit). */
  readonly maxRepackBytes?: number | undefined;
  readonly dryRun: boolean;
  readonly timing: LeaseTiming;
  readonly log?: (line: string) => void;
}

export interface PruneReport {
  /** Packs that phase 1 marked for deletion in this run, and their bytes. */
  packsMarked: number;
  bytesMarked: number;
  /** Of those, partly used packs whose live blobs were copied into new packs first. */
  packsRepacked: number;
  blobsRepacked: number;
  /** Packs deleted by sweeps in this run (of this or earlier plans) and the bytes reclaimed. */
  packsDeleted: number;
  bytesReclaimed: number;
  /** Candidate packs kept because a snapshot made meanwhile uses them. */
  packsResurrected: number;
  /** Plans that still wait for writers that were running when they were made. */
  plansPending: number;
  indexFilesBefore: number;
  indexFilesAfter: number;
  unusedPercentAfter: number;
}

/** Index files written by compaction hold at most this many blobs each. */
const BLOBS_PER_INDEX_FILE = 200_000;
/**
 * Repacking lets the event loop turn after this many blobs: the native memory behind each blob's
 * verification (cipher and hasher handles) is freed by finalizers that run between turns, and a
 * pack's worth of them (~190 MiB for 35,000 small blobs) piled up without it.
 */
const YIELD_EVERY_BLOBS = 256;

/**
 * Counters of one pack, instead of its entries: a million entry objects took ~230 MiB. The
 * entries of the few packs that need them are read from the index, one pack at a time.
 */
interface PackUsage {
  size: number;
  usedBytes: number;
  unusedBytes: number;
  /** Its number in the index's pack groups, or -1 for a pack no index lists. */
  group: number;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Removes data that no snapshot uses, in two phases so that backups running meanwhile lose
 * nothing (docs/format.md §9). Phase 1 marks: candidates leave the index and go into a plan.
 * Phase 2 sweeps a plan once no writer that could have seen the old index is still running,
 * keeping any candidate that a snapshot made in between uses. Both run in every call: the sweep
 * of this run's plan happens at once when no other writer is active.
 */
export async function prune(repo: Repository, options: PruneOptions): Promise<PruneReport> {
  const log = options.log ?? ((): void => undefined);
  const report: PruneReport = {
    packsMarked: 0, bytesMarked: 0, packsRepacked: 0, blobsRepacked: 0, packsDeleted: 0, bytesReclaimed: 0,
    packsResurrected: 0, plansPending: 0, indexFilesBefore: 0, indexFilesAfter: 0, unusedPercentAfter: 0,
  };
  const lease = options.dryRun ? undefined : await Lease.acquire(repo, 'prune', options.timing);
  try {
    // The order of these listings is what makes prune safe against concurrent writers:
    // leases before snapshots (a writer whose lease is gone has written its snapshot, so the mark
    // sees it), snapshots before index files (a listed snapshot's blobs are all in listed index
    // files, since writers index before they save a snapshot), index files before packs (a pack
    // missing from the loaded index is then unindexed, not lost).
    const plans = await listPlans(repo);
    for (const { plan } of plans) loadIndexFile(plan.index, repo.retired);
    const inPlans = new Set(plans.flatMap((p) => p.plan.packs));
    const leasesAtStart = await listLeases(repo);
    if (!options.dryRun) await deleteExpiredLeases(repo, leasesAtStart, options.timing);
    const snapshots = await repo.listSnapshotIds();
    const indexFiles = await repo.loadIndexFiles(repo.index); // The ones compaction replaces.
    report.indexFilesBefore = indexFiles.length;
    const packSizes = await listPackSizes(repo);
    const used = new BlobSet();
    await markSnapshots(repo, snapshots, used);
    log(`marked ${used.size} blobs in use by ${snapshots.length} snapshots`);

    if (!options.dryRun) await sweepPlans(repo, plans, used, packSizes, leasesAtStart, lease?.record.id, options, report);

    // ---- phase 1: choose candidates
    const groups = repo.index.groupByPack();
    const usage = packUsage(groups, packSizes, used);
    const candidates = new Map<string, PackUsage>();
    for (const [pack, u] of usage) if (u.usedBytes === 0 && !inPlans.has(pack)) candidates.set(pack, u);
    for (const [pack, size] of packSizes) {
      if (!usage.has(pack) && !inPlans.has(pack)) candidates.set(pack, { size, usedBytes: 0, unusedBytes: size, group: -1 });
    }
    const repack = chooseRepacks(usage, candidates, options);
    report.packsMarked = candidates.size + repack.length;
    report.bytesMarked = [...candidates.values(), ...repack.map(([, u]) => u)].reduce((sum, u) => sum + u.size, 0);
    report.packsRepacked = repack.length;
    if (options.dryRun) {
      report.unusedPercentAfter = unusedPercent(usage, new Set([...candidates.keys(), ...repack.map(([p]) => p)]));
      report.plansPending = plans.length;
      report.indexFilesAfter = indexFiles.length;
      return report;
    }

    // ---- phase 1: copy live blobs out of the packs to repack (indexed by the writer's own index files)
    let repackedBytes = 0;
    if (repack.length > 0) ({ copied: report.blobsRepacked, bytes: repackedBytes } = await repackLiveBlobs(repo, groups, repack, used));
    for (const [pack, u] of repack) candidates.set(pack, u);

    // ---- phase 1: plan, then compacted index without the candidates, then drop the old index files
    // Without candidates, the index is rewritten only when merging would leave fewer files.
    if (candidates.size === 0 && indexFiles.length <= Math.max(1, Math.ceil(repo.index.size / BLOBS_PER_INDEX_FILE))) {
      report.indexFilesAfter = indexFiles.length;
      report.plansPending = await countPlans(repo);
      return report;
    }
    const retained = [...usage].filter(([pack]) => !candidates.has(pack)).map(([, u]) => u.group);
    if (candidates.size === 0) {
      // Nothing to delete: only merge the index files.
      report.indexFilesAfter = await writeCompactedIndex(repo, groups, retained, indexFiles);
      for (const name of indexFiles) await repo.storage.delete(name);
      report.plansPending = await countPlans(repo);
      return report;
    }
    const created = new Date().toISOString();
    const head = planHeader({ created, completed: undefined, packs: [...candidates.keys()] });
    const encoded = encodeEntries(groups, [...candidates.values()].map((u) => u.group).filter((g) => g >= 0), head);
    // The draft exists before the old index files go, so readers can always find candidate blobs.
    const draftId = await writePlan(repo, encoded);
    report.indexFilesAfter = await writeCompactedIndex(repo, groups, retained, indexFiles);
    for (const name of indexFiles) await repo.storage.delete(name);
    setCompleted(encoded, new Date().toISOString());
    const planId = await writePlan(repo, encoded);
    await deletePlan(repo, draftId);
    const plan = planOf(decodePlan(encoded));
    log(`marked ${candidates.size} packs for deletion (plan ${planId.slice(0, 8)})`);

    // ---- phase 2 for this run's plan, at once if nobody else is writing
    const leasesNow = await listLeases(repo);
    const known = new Set(snapshots);
    const newer = (await repo.listSnapshotIds()).filter((id) => !known.has(id));
    await repo.loadIndexFiles(repo.index, { skip: new Set(indexFiles) }); // Those of writers that finished meanwhile.
    await markSnapshots(repo, newer, used);
    await sweepPlans(repo, [{ id: planId, plan }], used, packSizes, leasesNow, lease?.record.id, options, report);
    report.plansPending = await countPlans(repo);
    report.unusedPercentAfter = unusedPercent(usage, new Set(candidates.keys()), repackedBytes);
    return report;
  } finally {
    await lease?.release();
  }
}

async function listPackSizes(repo: Repository): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for await (const obj of repo.storage.list(DATA_PREFIX)) {
    const id = idOfName(obj.name);
    if (id !== undefined) sizes.set(id, obj.size);
  }
  return sizes;
}

/** Used and unused bytes of every indexed pack that exists in storage, by hex pack ID. */
function packUsage(groups: PackGroups, packSizes: ReadonlyMap<string, number>, used: BlobSet): Map<string, PackUsage> {
  const usage = new Map<string, PackUsage>();
  for (let group = 0; group < groups.packCount; group++) {
    const pack = groups.packId(group).toString('hex');
    const size = packSizes.get(pack);
    if (size === undefined) continue; // A missing pack is check's business; nothing to delete.
    const u: PackUsage = { size, usedBytes: 0, unusedBytes: 0, group };
    groups.scan(group, (id, length) => {
      if (used.has(id)) u.usedBytes += length;
      else u.unusedBytes += length;
    });
    usage.set(pack, u);
  }
  // Headers and trailers count as neither: no repacking can reclaim them, and counting them as
  // unused would make every small pack look wasteful, repacked by every prune without end.
  return usage;
}

/** `prefix`, then the entries of the given pack groups as an index file (a plan), built a pack at a time. */
function encodeEntries(groups: PackGroups, packs: readonly number[], prefix: Buffer): Buffer {
  const encoder = new IndexFileEncoder(packs.length, packs.reduce((sum, g) => sum + groups.blobCount(g), 0), { prefix });
  for (const g of packs) encoder.addPack(groups.packId(g), groups.blobs(g));
  return encoder.finish();
}

/** The share of pack bytes no snapshot uses, once `removed` are gone and `addedBytes` of new (fully used) packs exist. */
function unusedPercent(usage: ReadonlyMap<string, PackUsage>, removed: ReadonlySet<string>, addedBytes = 0): number {
  let total = addedBytes;
  let unused = 0;
  for (const [pack, u] of usage) {
    if (removed.has(pack)) continue;
    total += u.size;
    unused += u.unusedBytes;
  }
  return total === 0 ? 0 : (100 * unused) / total;
}

/** Partly used packs to rewrite, most wasteful first, until the unused share is under the limit. */
function chooseRepacks(usage: ReadonlyMap<string, PackUsage>, candidates: ReadonlyMap<string, PackUsage>, options: PruneOptions): Array<[string, PackUsage]> {
  let total = 0;
  let unused = 0;
  for (const [pack, u] of usage) {
    if (candidates.has(pack)) continue;
    total += u.size;
    unused += u.unusedBytes;
  }
  const partly = [...usage].filter(([pack, u]) => !candidates.has(pack) && u.usedBytes > 0 && u.unusedBytes > 0)
    .sort(([, a], [, b]) => b.unusedBytes / b.size - a.unusedBytes / a.size);
  const chosen: Array<[string, PackUsage]> = [];
  let repackBytes = 0;
  for (const [pack, u] of partly) {
    if (total === 0 || (100 * unused) / total <= options.maxUnusedPercent) break;
    if (options.maxRepackBytes !== undefined && repackBytes + u.size > options.maxRepackBytes) break;
    chosen.push([pack, u]);
    repackBytes += u.size;
    unused -= u.unusedBytes;
    total -= u.unusedBytes;
  }
  return chosen;
}

/** Copies the used blobs of `packs` into new packs (verifying each); returns how many it copied. */
async function repackLiveBlobs(
  repo: Repository, groups: PackGroups, packs: ReadonlyArray<[string, PackUsage]>, used: BlobSet,
): Promise<{ copied: number; bytes: number }> {
  const writer = new BlobWriter(repo);
  let copied = 0;
  for (const [pack, u] of packs) {
    // One read per pack: a range read per blob made repacking a million small blobs take minutes.
    const bytes = await repo.storage.get(packName(pack));
    for (const entry of groups.blobs(u.group)) {
      if (!used.has(entry.id)) continue;
      // A copy, so the new pack does not keep the whole old one alive.
      const sealed = Buffer.from(bytes.subarray(entry.offset, entry.offset + entry.length));
      if (sealed.length !== entry.length) throw new CorruptObjectError(packName(pack), `blob ${entry.id.toString('hex')} lies past its end`);
      decodeBlobTransient(repo.keys, sealed, entry.id, entry.rawLength); // Never carry damage into a new pack (the plaintext is not needed).
      await writer.add(entry.type, { id: entry.id, sealed, rawLength: entry.rawLength });
      copied++;
      if (copied % YIELD_EVERY_BLOBS === 0) await setImmediate();
    }
  }
  await writer.flush();
  return { copied, bytes: writer.stats.bytesAdded };
}

/**
 * Writes the entries of the given pack groups into index files of about BLOBS_PER_INDEX_FILE
 * blobs, each superseding `supersedes`; only one file's entries are objects at a time.
 */
async function writeCompactedIndex(repo: Repository, groups: PackGroups, packs: readonly number[], supersedes: readonly string[]): Promise<number> {
  const superseded = supersedes.map((name) => Buffer.from(idOfName(name) ?? '', 'hex'));
  let batch: number[] = [];
  let blobs = 0;
  let files = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0 && files > 0) return;
    await repo.writeIndexFile(batch.map((g) => ({ packId: groups.packId(g), blobs: groups.blobs(g) })), { supersedes: superseded });
    files++;
    batch = [];
    blobs = 0;
  };
  for (const group of packs) {
    if (blobs + groups.blobCount(group) > BLOBS_PER_INDEX_FILE && batch.length > 0) await flush();
    batch.push(group);
    blobs += groups.blobCount(group);
  }
  if (batch.length > 0) await flush();
  return files;
}

/**
 * Leases of writers that crashed (expired, with the skew allowance) are garbage: no writer that
 * can still act owns them, and one that comes back finds its lease lapsed and stops.
 */
async function deleteExpiredLeases(repo: Repository, leases: readonly LeaseRecord[], timing: LeaseTiming): Promise<void> {
  const now = new Date();
  for (const lease of leases) if (!isLive(lease, now, timing)) await repo.storage.delete(leaseName(lease.id));
}

/** Writers that may have loaded an index listing the plan's packs, and so may still use them. */
function blockingLeases(plan: PrunePlan, leases: readonly LeaseRecord[], ownLease: string | undefined, timing: LeaseTiming): LeaseRecord[] {
  const now = new Date();
  const live = leases.filter((l) => l.id !== ownLease && isLive(l, now, timing));
  // Its prune died in phase 1, at an unknown time: every writer still running may depend on it.
  // Only live leases count: the dead prune's own lease, and those of other crashed writers, are
  // never released, and would keep the plan (and its packs) forever.
  if (plan.completed === undefined) return live;
  const cutoff = Date.parse(plan.completed) + timing.skewMs;
  return live.filter((l) => Date.parse(l.started) < cutoff);
}

/**
 * Phase 2: deletes the packs of plans that no running writer can depend on any more. A candidate
 * blob that a snapshot uses (made by a writer that loaded the old index) and that is not indexed
 * elsewhere is indexed again and its pack kept. `leases` must have been listed before the
 * snapshots behind `used`.
 */
async function sweepPlans(
  repo: Repository, plans: readonly StoredPlan[], used: BlobSet, packSizes: Map<string, number>,
  leases: readonly LeaseRecord[], ownLease: string | undefined, options: PruneOptions, report: PruneReport,
): Promise<void> {
  if (plans.length === 0) return;
  // What the index files say now: after this run's compaction, and with other writers' additions.
  const live = new BlobIndex();
  await repo.loadIndexFiles(live);
  const liveIndexed = new Set(live.packIds().map((p) => p.toString('hex')));
  for (const { id, plan } of plans) {
    const blocking = blockingLeases(plan, leases, ownLease, options.timing);
    if (blocking.length > 0) {
      options.log?.(`plan ${id.slice(0, 8)} waits for ${blocking.length} running writers (${blocking.map((l) => `${l.kind}@${l.hostname}`).join(', ')})`);
      continue;
    }
    // Only the packs to keep stay decoded into objects, one pack at a time otherwise.
    const resurrect: IndexPack[] = [];
    forEachIndexPack(plan.index, (pack) => {
      if (pack.blobs.some((b) => used.has(b.id) && !live.has(b.id))) resurrect.push(pack);
    });
    const kept = new Set(resurrect.map((p) => p.packId.toString('hex')));
    // A pack some index lists again is not ours to delete.
    const doomed = plan.packs.filter((pack) => !kept.has(pack) && !liveIndexed.has(pack));
    if (resurrect.length > 0) {
      await repo.writeIndexFile(resurrect);
      for (const pack of resurrect) for (const blob of pack.blobs) live.add(blob.id, { packId: pack.packId, ...blob });
      report.packsResurrected += resurrect.length;
    }
    for (const pack of doomed) {
      try {
        await repo.storage.delete(packName(pack));
        report.packsDeleted++;
        report.bytesReclaimed += packSizes.get(pack) ?? 0;
        packSizes.delete(pack);
      } catch (err) {
        options.log?.(`could not delete pack ${pack}: ${errorText(err)}; a later prune retries`);
      }
    }
    await deletePlan(repo, id);
  }
}
