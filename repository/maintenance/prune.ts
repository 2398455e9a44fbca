import { setImmediate } from 'node:timers/promises';
import { decodeBlobTransient } from '../blob/blob-codec.ts';
import { BlobWriter } from '../blob-writer.ts';
import { BlobIndex, forEachIndexPack, IndexFileEncoder, loadIndexFile, type IndexPack, type PackGroups } from '../index/index.ts';
import { DATA_PREFIX, idOfName, indexName, packName } from '../object-names.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';
import type { Repository } from '../repository.ts';
import { CorruptObjectError } from '../errors.ts';
import { systemClock, type PausePoint } from './coordination.ts';
import { Lease, revokeExpired, type LeaseOptions } from './leases.ts';
import { completedPlan, countPlans, decodePlan, deletePlan, listPlans, planHeader, planOf, writePlan, type StoredPlan } from './prune-plan.ts';
import { BlobSet, markSnapshots } from './used-blobs.ts';

export interface PruneOptions {
  /** Repack partly used packs until at most this percentage of pack bytes is unused. */
  readonly maxUnusedPercent: number;
  /** Stop repacking after this many bytes of packs (undefined: no limit). */
  readonly maxRepackBytes?: number | undefined;
  readonly dryRun: boolean;
  readonly lease: LeaseOptions;
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
  // At most one prune (or index repair) at a time; a stalled one whose lease expired is revoked.
  const lease = options.dryRun ? undefined : await Lease.acquireExclusive(repo, 'prune', options.lease);
  const pause = async (point: PausePoint): Promise<void> => { await options.lease.pause?.(point); };
  try {
    // The order of these listings matters (docs/format.md §9): plans first (their packs are not
    // candidates again); snapshots before index files (a listed snapshot's blobs are all in listed
    // index files, since writers index before they save a snapshot); index files before packs (a
    // pack missing from the loaded index is then unindexed, not lost).
    const plans = await listPlans(repo);
    for (const { plan } of plans) loadIndexFile(plan.index, repo.retired);
    const inPlans = new Set(plans.flatMap((p) => p.plan.packs));
    await pause('prune-plans-listed');
    // Leases of crashed writers go in every run, plans or not (the sweep looks again, in its order).
    if (lease) await revokeExpired(repo, options.lease.timing.ttlMs, lease.record.id);
    const snapshots = await repo.listSnapshotIds();
    const marked: Marked = { used: new BlobSet(), snapshots: new Set(snapshots), indexFiles: await repo.loadIndexFiles(repo.index) };
    report.indexFilesBefore = marked.indexFiles.length;
    const packSizes = await listPackSizes(repo);
    await pause('prune-packs-listed');
    await markSnapshots(repo, snapshots, marked.used, log);
    log(`marked ${marked.used.size} blobs in use by ${snapshots.length} snapshots`);

    if (lease) await sweepPlans(repo, plans, new Set(repo.index.packIds().map((p) => p.toString('hex'))), marked, packSizes, lease, options, report);
    const { used, indexFiles } = marked;

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
    if (!lease) {
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
      await lease.confirm();
      for (const name of indexFiles) await repo.storage.delete(name);
      report.plansPending = await countPlans(repo);
      return report;
    }
    await pause('prune-marked');
    const clock = options.lease.clock ?? systemClock;
    const head = planHeader({ created: new Date(clock.now()).toISOString(), completed: undefined, packs: [...candidates.keys()], leases: undefined });
    const encoded = encodeEntries(groups, [...candidates.values()].map((u) => u.group).filter((g) => g >= 0), head);
    // The draft exists before the old index files go, so readers can always find candidate blobs.
    const draftId = await writePlan(repo, encoded);
    report.indexFilesAfter = await writeCompactedIndex(repo, groups, retained, indexFiles);
    await lease.confirm();
    for (const name of indexFiles) await repo.storage.delete(name);
    // No index lists the candidates now: only writers whose leases stand at this point can have
    // loaded one that did (a writer takes its lease before it loads the index).
    const leasesNow = await revokeExpired(repo, options.lease.timing.ttlMs, lease.record.id);
    const others = leasesNow.map((l) => l.record.id).filter((id) => id !== lease.record.id);
    const completed = new Date(clock.now()).toISOString();
    const planId = await writePlan(repo, completedPlan(encoded, completed, others));
    await pause('prune-plan-completed');
    await lease.confirm();
    await deletePlan(repo, draftId);
    const plan = planOf({ ...decodePlan(encoded), completed, leases: others });
    log(`marked ${candidates.size} packs for deletion (plan ${planId.slice(0, 8)})`);

    // ---- phase 2 for this run's plan, at once if nobody else is writing; no index lists its
    // candidates since the old index files went.
    await sweepPlans(repo, [{ id: planId, plan }], new Set(), marked, packSizes, lease, options, report);
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
 * blobs, each superseding `supersedes`; only one file's entries are objects at a time. At least
 * one file, even empty: until the superseded files are gone it is what tells another prune that
 * they are being replaced, so that it merges them into its own files (docs/format.md §9).
 */
async function writeCompactedIndex(repo: Repository, groups: PackGroups, packs: readonly number[], supersedes: readonly string[]): Promise<number> {
  const superseded = supersedes.map((name) => Buffer.from(idOfName(name) ?? '', 'hex'));
  let batch: number[] = [];
  let blobs = 0;
  let files = 0;
  const flush = async (): Promise<void> => {
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
  if (batch.length > 0 || files === 0) await flush();
  return files;
}

/**
 * Writes the entries of `packs` into a new index file, then looks at the packs again: one that a
 * prune revoked while stalled deleted meanwhile must not stay indexed (docs/format.md §9), so the
 * file is then replaced by one without it. Returns how many packs stay indexed.
 */
async function indexAgain(repo: Repository, packs: readonly IndexPack[]): Promise<number> {
  const written = await repo.writeIndexFile([...packs]);
  const present = await Promise.all(packs.map(async (pack) => (await packSize(repo, pack.packId.toString('hex'))) !== undefined));
  if (present.every(Boolean)) return packs.length;
  const kept = packs.filter((_, i) => present[i]);
  if (kept.length > 0) await repo.writeIndexFile(kept);
  await repo.storage.delete(indexName(written));
  return kept.length;
}

/** The size of pack `hex`, or undefined when it is gone. */
async function packSize(repo: Repository, hex: string): Promise<number | undefined> {
  try {
    return (await repo.storage.stat(packName(hex))).size;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Adds to `packSizes` the packs that the index names and the listing of packs did not show:
 * those of index files loaded after that listing (by the sweep, for snapshots made meanwhile).
 * Compaction rewrites the entries only of packs it knows to exist, and it replaces those index
 * files too: without their sizes, their packs would be in no index, and their snapshots broken.
 */
async function sizeNewPacks(repo: Repository, packSizes: Map<string, number>): Promise<void> {
  for (const id of repo.index.packIds()) {
    const hex = id.toString('hex');
    if (packSizes.has(hex)) continue;
    const size = await packSize(repo, hex);
    if (size !== undefined) packSizes.set(hex, size);
  }
}

/** What a prune run has marked: the blobs in use, by which snapshots, and the index files read into repo.index. */
interface Marked {
  readonly used: BlobSet;
  readonly snapshots: Set<string>;
  /** The index files compaction replaces. */
  readonly indexFiles: string[];
}

/**
 * Phase 2: deletes the packs of the plans that no standing lease can depend on any more, all such
 * plans together (a prune killed between writing its completed plan and deleting its draft leaves
 * two plans of the same packs). A candidate blob that a snapshot uses and no index lists is
 * indexed again, from its pack, if the pack is still there; its pack is kept.
 *
 * The order: `indexedBefore` (the packs some index file listed, read before this) ; the leases,
 * revoking the expired ones; the snapshots made since `marked`; the index files as they are now.
 * A writer that loaded an index listing a candidate did so before that index file went, so
 * before the first listing, so its lease is seen (or it has finished, and its snapshot is seen,
 * or it was revoked and writes nothing more).
 */
async function sweepPlans(
  repo: Repository, plans: readonly StoredPlan[], indexedBefore: ReadonlySet<string>, marked: Marked, packSizes: Map<string, number>,
  lease: Lease, options: PruneOptions, report: PruneReport,
): Promise<void> {
  if (plans.length === 0) return;
  const standing = await revokeExpired(repo, options.lease.timing.ttlMs, lease.record.id);
  const newer = (await repo.listSnapshotIds()).filter((id) => !marked.snapshots.has(id));
  if (newer.length > 0) {
    // Their blobs are in index files written since: those of writers that finished meanwhile.
    marked.indexFiles.push(...await repo.loadIndexFiles(repo.index, { skip: new Set(marked.indexFiles) }));
    await sizeNewPacks(repo, packSizes);
    await markSnapshots(repo, newer, marked.used, options.log);
    for (const id of newer) marked.snapshots.add(id);
  }
  const { used } = marked;
  const others = standing.filter((l) => l.record.id !== lease.record.id);
  const sweepable: StoredPlan[] = [];
  const held = new Set<string>();
  for (const stored of plans) {
    const { leases } = stored.plan;
    // A draft's prune died before it knew which writers saw the candidates: any may have.
    const blocking = leases === undefined ? others : others.filter((l) => leases.includes(l.record.id));
    if (blocking.length === 0) {
      sweepable.push(stored);
      continue;
    }
    for (const pack of stored.plan.packs) held.add(pack);
    options.log?.(`plan ${stored.id.slice(0, 8)} waits for ${blocking.length} running writers (${blocking.map((l) => `${l.record.kind}@${l.record.hostname}`).join(', ')})`);
  }
  if (sweepable.length === 0) return;
  // What the index files say now: after this run's compaction, and with other writers' additions.
  const live = new BlobIndex();
  await repo.loadIndexFiles(live);
  const liveIndexed = new Set(live.packIds().map((p) => p.toString('hex')));
  // Only the packs to keep stay decoded into objects, one pack at a time otherwise; each once,
  // however many plans list it.
  const resurrect = new Map<string, IndexPack>();
  for (const { plan } of sweepable) {
    // A draft's prune may have been revoked while stalled just before deleting the index files it
    // replaced, and delete them late: what `live` finds only in those files is not to be relied on.
    const draft = plan.completed === undefined;
    forEachIndexPack(plan.index, (pack) => {
      const hex = pack.packId.toString('hex');
      if (resurrect.has(hex) || !pack.blobs.some((b) => used.has(b.id) && (draft || !live.has(b.id)))) return;
      // Never index a pack that is gone: its entries would hide good copies and mislead every later backup.
      if (packSizes.has(hex)) resurrect.set(hex, pack);
      else options.log?.(`pack ${hex} holds blobs that a snapshot uses, but it is gone; "arca check" names the snapshot`);
    });
  }
  if (resurrect.size > 0) report.packsResurrected += await indexAgain(repo, [...resurrect.values()]);
  // A pack some index lists again, or that a plan still waiting lists, is not ours to delete.
  const doomed = new Set(sweepable.flatMap((p) => p.plan.packs)
    .filter((pack) => !resurrect.has(pack) && !liveIndexed.has(pack) && !indexedBefore.has(pack) && !held.has(pack)));
  await lease.confirm();
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
  for (const { id } of sweepable) await deletePlan(repo, id);
}
