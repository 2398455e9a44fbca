import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { CorruptObjectError } from '../errors.ts';
import { decodeIndexFile, encodeIndexFile, type IndexPack } from '../index/index.ts';
import { idOfName, PRUNE_PLANS_PREFIX, prunePlanName } from '../object-names.ts';
import type { Repository } from '../repository.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';

/**
 * Phase 1 of a prune leaves a plan: the packs it intends to delete and, for those that were
 * indexed, their index entries, so readers can still find those blobs until the sweep.
 */
export interface PrunePlan {
  readonly created: string;
  /** When the index no longer listed the candidates (undefined while phase 1 is running). */
  readonly completed: string | undefined;
  /** Every candidate pack, indexed or not (hex IDs). */
  readonly packs: readonly string[];
  /** Index entries of the candidates that were indexed. */
  readonly entries: readonly IndexPack[];
}

interface PlanJson {
  version: 1;
  created: string;
  completed?: string;
  packs: string[];
  index: string;
}

export interface StoredPlan {
  readonly id: string;
  readonly plan: PrunePlan;
}

export async function writePlan(repo: Repository, plan: PrunePlan): Promise<string> {
  const json: PlanJson = {
    version: 1,
    created: plan.created,
    packs: [...plan.packs],
    index: zstdCompressSync(encodeIndexFile([...plan.entries])).toString('base64'),
    ...(plan.completed === undefined ? {} : { completed: plan.completed }),
  };
  return repo.writeSealedObject(prunePlanName, 'prune-plan', Buffer.from(JSON.stringify(json)));
}

export async function readPlan(repo: Repository, id: string): Promise<PrunePlan> {
  const name = prunePlanName(id);
  const plain = await repo.readSealedObject(name, 'prune-plan');
  try {
    const json = JSON.parse(plain.toString('utf8')) as Partial<PlanJson>;
    if (json.version !== 1 || typeof json.created !== 'string' || !Array.isArray(json.packs) || typeof json.index !== 'string') {
      throw new Error('unknown layout');
    }
    return {
      created: json.created,
      completed: json.completed,
      packs: json.packs,
      entries: decodeIndexFile(zstdDecompressSync(Buffer.from(json.index, 'base64'))).packs,
    };
  } catch (err) {
    throw new CorruptObjectError(name, err instanceof Error ? err.message : 'undecodable', { cause: err });
  }
}

export async function listPlans(repo: Repository): Promise<StoredPlan[]> {
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

export async function deletePlan(repo: Repository, id: string): Promise<void> {
  await repo.storage.delete(prunePlanName(id));
}
