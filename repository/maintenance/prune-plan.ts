import { CorruptObjectError } from '../errors.ts';
import { decodeIndexFile, ID_LENGTH, validateIndexFile, type IndexPack } from '../index/index.ts';
import { idOfName, PRUNE_PLANS_PREFIX, prunePlanName } from '../object-names.ts';
import type { SealPurpose } from '../crypto/seal.ts';
import { ObjectNotFoundError, type Storage } from '../storage/storage.ts';

/** What plans need of a repository: its storage and its sealing (the Repository provides both). */
export interface SealedObjectStore {
  readonly storage: Storage;
  readSealedObject(name: string, purpose: SealPurpose): Promise<Buffer>;
  writeSealedObject(nameOf: (id: string) => string, purpose: SealPurpose, plaintext: Uint8Array | readonly Uint8Array[]): Promise<string>;
}

/**
 * Phase 1 of a prune leaves a plan: the packs it intends to delete and, for those that were
 * indexed, their index entries, so readers can still find those blobs until the sweep.
 */
export interface PlanContent {
  readonly created: string;
  /** When the index no longer listed the candidates (undefined while phase 1 is running). */
  readonly completed: string | undefined;
  /** Every candidate pack, indexed or not (hex IDs). */
  readonly packs: readonly string[];
  /**
   * The leases (hex IDs) that stood once the index no longer listed the candidates: the writers
   * that may have loaded an index listing them. Undefined in a draft (or a version 2 plan): then
   * every lease may be one of them.
   */
  readonly leases: readonly string[] | undefined;
  /**
   * Index entries of the candidates that were indexed, as an index file (docs/format.md §9):
   * one buffer however many blobs, loaded with loadIndexFile or read with forEachIndexPack.
   */
  readonly index: Buffer;
}

export interface PrunePlan extends PlanContent {
  /** `index` decoded into objects, anew on every access (check reports on them pack by pack). */
  readonly entries: readonly IndexPack[];
}

export interface StoredPlan {
  readonly id: string;
  readonly plan: PrunePlan;
}

// Layout of a plan's plaintext (docs/format.md §9): magic and version, created and completed (ms
// since the epoch, float64 LE; completed -1 in a draft), the number of candidate packs and of
// leases (uint32 LE each), the pack IDs, the lease IDs (16 bytes), then the index file of the
// candidates' entries. Not compressed: 32 of the 45 bytes of an entry are a hash, and a compressed
// copy of a million entries cost ~35 MiB more. Version 2 had no lease count or IDs.
const MAGIC = Buffer.from('ARCAPLN', 'ascii');
/** Version 1 was JSON with a base64 index; no release wrote it. */
const VERSION = 3;
const HEADER_BYTES = 32;
const V2_HEADER_BYTES = 28;
const LEASE_ID_LENGTH = 16;
const NOT_COMPLETED = -1;

/** A plan in memory, as readPlan returns it. */
export function planOf(content: PlanContent): PrunePlan {
  return { ...content, get entries() { return decodeIndexFile(content.index).packs; } };
}

/**
 * The bytes of an encoded plan before its index file: pass them as the `prefix` of the
 * IndexFileEncoder that encodes the entries, so the plan is built in one buffer.
 */
export function planHeader(plan: Omit<PlanContent, 'index'>): Buffer {
  const leases = plan.completed === undefined ? [] : plan.leases ?? [];
  const head = Buffer.alloc(HEADER_BYTES + ID_LENGTH * plan.packs.length + LEASE_ID_LENGTH * leases.length);
  MAGIC.copy(head, 0);
  head.writeUInt8(VERSION, 7);
  head.writeDoubleLE(Date.parse(plan.created), 8);
  head.writeDoubleLE(plan.completed === undefined ? NOT_COMPLETED : Date.parse(plan.completed), 16);
  head.writeUInt32LE(plan.packs.length, 24);
  head.writeUInt32LE(leases.length, 28);
  plan.packs.forEach((pack, i) => head.write(pack, HEADER_BYTES + ID_LENGTH * i, ID_LENGTH, 'hex'));
  const leasesAt = HEADER_BYTES + ID_LENGTH * plan.packs.length;
  leases.forEach((lease, i) => head.write(lease, leasesAt + LEASE_ID_LENGTH * i, LEASE_ID_LENGTH, 'hex'));
  return head;
}

/** The parts of the completed plan made from an encoded draft: a new header, the draft's entries unchanged (they are large). */
export function completedPlan(draft: Buffer, completed: string, leases: readonly string[]): Buffer[] {
  const content = decodePlan(draft);
  return [planHeader({ ...content, completed, leases }), content.index];
}

/** Reads an encoded plan; its `index` is a view into `encoded`. Throws on a malformed plan. */
export function decodePlan(encoded: Buffer): PlanContent {
  if (encoded.length < HEADER_BYTES || !encoded.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a prune plan');
  const version = encoded.readUInt8(7);
  if (version !== VERSION && version !== 2) throw new Error(`unknown plan version ${version}`);
  const headerBytes = version === 2 ? V2_HEADER_BYTES : HEADER_BYTES;
  if (encoded.length < headerBytes) throw new Error('it is cut short');
  const created = encoded.readDoubleLE(8);
  const completed = encoded.readDoubleLE(16);
  const count = encoded.readUInt32LE(24);
  const leaseCount = version === 2 ? 0 : encoded.readUInt32LE(28);
  const leasesAt = headerBytes + ID_LENGTH * count;
  const indexStart = leasesAt + LEASE_ID_LENGTH * leaseCount;
  if (indexStart > encoded.length) throw new Error(`it lists ${count} packs and ${leaseCount} leases but is only ${encoded.length} bytes long`);
  const packs: string[] = [];
  for (let i = 0; i < count; i++) packs.push(encoded.toString('hex', headerBytes + ID_LENGTH * i, headerBytes + ID_LENGTH * (i + 1)));
  const leases: string[] = [];
  for (let i = 0; i < leaseCount; i++) leases.push(encoded.toString('hex', leasesAt + LEASE_ID_LENGTH * i, leasesAt + LEASE_ID_LENGTH * (i + 1)));
  const index = encoded.subarray(indexStart);
  validateIndexFile(index);
  const done = completed !== NOT_COMPLETED;
  return {
    created: new Date(created).toISOString(),
    completed: done ? new Date(completed).toISOString() : undefined,
    packs,
    leases: done && version !== 2 ? leases : undefined,
    index,
  };
}

/** Stores an encoded plan (planHeader + index file, whole or in parts); returns its ID. */
export async function writePlan(repo: SealedObjectStore, encoded: Buffer | readonly Buffer[]): Promise<string> {
  return repo.writeSealedObject(prunePlanName, 'prune-plan', encoded);
}

export async function readPlan(repo: SealedObjectStore, id: string): Promise<PrunePlan> {
  const name = prunePlanName(id);
  const encoded = await repo.readSealedObject(name, 'prune-plan');
  try {
    return planOf(decodePlan(encoded));
  } catch (err) {
    throw new CorruptObjectError(name, err instanceof Error ? err.message : 'undecodable', { cause: err });
  }
}

export async function listPlans(repo: SealedObjectStore): Promise<StoredPlan[]> {
  const plans: StoredPlan[] = [];
  for await (const obj of repo.storage.list(PRUNE_PLANS_PREFIX)) {
    const id = idOfName(obj.name);
    if (id === undefined) continue;
    try {
      plans.push({ id, plan: await readPlan(repo, id) });
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err; // Swept since the listing.
    }
  }
  return plans;
}

/** How many plans there are, without reading them. */
export async function countPlans(repo: SealedObjectStore): Promise<number> {
  let count = 0;
  for await (const obj of repo.storage.list(PRUNE_PLANS_PREFIX)) if (idOfName(obj.name) !== undefined) count++;
  return count;
}

export async function deletePlan(repo: SealedObjectStore, id: string): Promise<void> {
  await repo.storage.delete(prunePlanName(id));
}
