import { decodeBlob } from '../blob/blob-codec.ts';
import { BlobWriter } from '../blob-writer.ts';
import { BlobIndex, type BlobLocation, type IndexBlob, type IndexPack } from '../index/index.ts';
import { DATA_PREFIX, idOfName, leaseName, packName } from '../object-names.ts';
import type { Repository } from '../repository.ts';
import { CorruptObjectError } from '../errors.ts';
import { isLive, Lease, listLeases, type LeaseRecord, type LeaseTiming } from './leases.ts';
import { deletePlan, listPlans, writePlan, type PrunePlan, type StoredPlan } from './prune-plan.ts';
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

interface PackUsage {
  size: number;
  usedBytes: number;
  unusedBytes: number;
  entries: IndexBlob[];
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
    for (const { plan } of plans) addEntries(repo.retired, plan.entries);
    const inPlans = new Set(plans.flatMap((p) => p.plan.packs));
    const leasesAtStart = await listLeases(repo);
    if (!options.dryRun) await deleteExpiredLeases(repo, leasesAtStart, options.timing);
    const snapshots = await repo.listSnapshotIds();
    const indexFiles = await loadLiveIndex(repo);
    report.indexFilesBefore = indexFiles.length;
    const packSizes = await listPackSizes(repo);
    const used = new BlobSet();
    await markSnapshots(repo, snapshots, used);
    log(`marked ${used.size} blobs in use by ${snapshots.length} snapshots`);

    if (!options.dryRun) await sweepPlans(repo, plans, used, packSizes, leasesAtStart, lease?.record.id, options, report);

    // ---- phase 1: choose candidates
    const usage = packUsage(repo, packSizes, used);
    const candidates = new Map<string, PackUsage>();
    for (const [pack, u] of usage) if (u.usedBytes === 0 && !inPlans.has(pack)) candidates.set(pack, u);
    for (const [pack, size] of packSizes) {
      if (!usage.has(pack) && !inPlans.has(pack)) candidates.set(pack, { size, usedBytes: 0, unusedBytes: size, entries: [] });
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
    if (repack.length > 0) ({ copied: report.blobsRepacked, bytes: repackedBytes } = await repackLiveBlobs(repo, repack, used));
    for (const [pack, u] of repack) candidates.set(pack, u);

    // ---- phase 1: plan, then compacted index without the candidates, then drop the old index files
    // Without candidates, the index is rewritten only when merging would leave fewer files.
    if (candidates.size === 0 && indexFiles.length <= Math.max(1, Math.ceil(repo.index.size / BLOBS_PER_INDEX_FILE))) {
      report.indexFilesAfter = indexFiles.length;
      report.plansPending = (await listPlans(repo)).length;
      return report;
    }
    const entriesOf = (pack: string, u: PackUsage): IndexPack => ({ packId: Buffer.from(pack, 'hex'), blobs: u.entries });
    const retained = [...usage].filter(([pack]) => !candidates.has(pack)).map(([p, u]) => entriesOf(p, u));
    if (candidates.size === 0) {
      // Nothing to delete: only merge the index files.
      report.indexFilesAfter = await writeCompactedIndex(repo, retained, indexFiles);
      for (const name of indexFiles) await repo.storage.delete(name);
      report.plansPending = (await listPlans(repo)).length;
      return report;
    }
    const created = new Date().toISOString();
    const planned = { created, packs: [...candidates.keys()], entries: [...candidates].filter(([, u]) => u.entries.length > 0).map(([p, u]) => entriesOf(p, u)) };
    // The draft exists before the old index files go, so readers can always find candidate blobs.
    const draftId = await writePlan(repo, { ...planned, completed: undefined });
    report.indexFilesAfter = await writeCompactedIndex(repo, retained, indexFiles);
    for (const name of indexFiles) await repo.storage.delete(name);
    const plan: PrunePlan = { ...planned, completed: new Date().toISOString() };
    const planId = await writePlan(repo, plan);
    await deletePlan(repo, draftId);
    log(`marked ${candidates.size} packs for deletion (plan ${planId.slice(0, 8)})`);

    // ---- phase 2 for this run's plan, at once if nobody else is writing
    const leasesNow = await listLeases(repo);
    const known = new Set(snapshots);
    const newer = (await repo.listSnapshotIds()).filter((id) => !known.has(id));
    await readIndexFiles(repo, repo.index, new Set(indexFiles)); // Those of writers that finished meanwhile.
    await markSnapshots(repo, newer, used);
    await sweepPlans(repo, [{ id: planId, plan }], used, packSizes, leasesNow, lease?.record.id, options, report);
    report.plansPending = (await listPlans(repo)).length;
    report.unusedPercentAfter = unusedPercent(usage, new Set(candidates.keys()), repackedBytes);
    return report;
  } finally {
    await lease?.release();
  }
}

/** Loads every index file into repo.index; returns their names (the ones compaction replaces). */
async function loadLiveIndex(repo: Repository): Promise<string[]> {
  return readIndexFiles(repo, repo.index);
}

/** Loads the index files not in `skip` into `into`; returns the names it loaded. */
async function readIndexFiles(repo: Repository, into: BlobIndex, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  return repo.forEachIndexFile((_name, packs) => { addEntries(into, packs); }, { skip });
}

function addEntries(into: BlobIndex, packs: readonly IndexPack[]): void {
  for (const pack of packs) for (const blob of pack.blobs) into.add(blob.id, { packId: pack.packId, ...blob });
}

async function listPackSizes(repo: Repository): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for await (const obj of repo.storage.list(DATA_PREFIX)) {
    const id = idOfName(obj.name);
    if (id !== undefined) sizes.set(id, obj.size);
  }
  return sizes;
}

/** Used and unused bytes of every indexed pack that exists in storage. */
function packUsage(repo: Repository, packSizes: ReadonlyMap<string, number>, used: BlobSet): Map<string, PackUsage> {
  const usage = new Map<string, PackUsage>();
  for (const [id, loc] of repo.index.entries()) {
    const pack = loc.packId.toString('hex');
    const size = packSizes.get(pack);
    if (size === undefined) continue; // A missing pack is check's business; nothing to delete.
    let u = usage.get(pack);
    if (!u) usage.set(pack, (u = { size, usedBytes: 0, unusedBytes: 0, entries: [] }));
    u.entries.push(entryOf(id, loc));
    if (used.has(id)) u.usedBytes += loc.length;
    else u.unusedBytes += loc.length;
  }
  // Headers and trailers count as neither: no repacking can reclaim them, and counting them as
  // unused would make every small pack look wasteful, repacked by every prune without end.
  return usage;
}

function entryOf(id: Buffer, loc: BlobLocation): IndexBlob {
  return { id, type: loc.type, offset: loc.offset, length: loc.length, rawLength: loc.rawLength };
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
async function repackLiveBlobs(repo: Repository, packs: ReadonlyArray<[string, PackUsage]>, used: BlobSet): Promise<{ copied: number; bytes: number }> {
  const writer = new BlobWriter(repo);
  let copied = 0;
  for (const [pack, u] of packs) {
    // One read per pack: a range read per blob made repacking a million small blobs take minutes.
    const bytes = await repo.storage.get(packName(pack));
    for (const entry of u.entries) {
      if (!used.has(entry.id)) continue;
      // A copy, so the new pack does not keep the whole old one alive.
      const sealed = Buffer.from(bytes.subarray(entry.offset, entry.offset + entry.length));
      if (sealed.length !== entry.length) throw new CorruptObjectError(packName(pack), `blob ${entry.id.toString('hex')} lies past its end`);
      decodeBlob(repo.keys, sealed, entry.id, entry.rawLength); // Never carry damage into a new pack.
      await writer.add(entry.type, { id: entry.id, sealed, rawLength: entry.rawLength });
      copied++;
    }
  }
  await writer.flush();
  return { copied, bytes: writer.stats.bytesAdded };
}

async function writeCompactedIndex(repo: Repository, packs: readonly IndexPack[], supersedes: readonly string[]): Promise<number> {
  const superseded = supersedes.map((name) => Buffer.from(idOfName(name) ?? '', 'hex'));
  let batch: IndexPack[] = [];
  let blobs = 0;
  let files = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0 && files > 0) return;
    await repo.writeIndexFile(batch, { supersedes: superseded });
    files++;
    batch = [];
    blobs = 0;
  };
  for (const pack of packs) {
    if (blobs + pack.blobs.length > BLOBS_PER_INDEX_FILE && batch.length > 0) await flush();
    batch.push(pack);
    blobs += pack.blobs.length;
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
  await readIndexFiles(repo, live);
  const liveIndexed = new Set(live.packIds().map((p) => p.toString('hex')));
  for (const { id, plan } of plans) {
    const blocking = blockingLeases(plan, leases, ownLease, options.timing);
    if (blocking.length > 0) {
      options.log?.(`plan ${id.slice(0, 8)} waits for ${blocking.length} running writers (${blocking.map((l) => `${l.kind}@${l.hostname}`).join(', ')})`);
      continue;
    }
    const entriesByPack = new Map(plan.entries.map((p) => [p.packId.toString('hex'), p]));
    const resurrect: IndexPack[] = [];
    const doomed: string[] = [];
    for (const pack of plan.packs) {
      const entries = entriesByPack.get(pack);
      const needed = entries?.blobs.filter((b) => used.has(b.id) && !live.has(b.id)) ?? [];
      if (needed.length > 0 && entries) resurrect.push(entries);
      else if (!liveIndexed.has(pack)) doomed.push(pack); // A pack some index lists again is not ours to delete.
    }
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
