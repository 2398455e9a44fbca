import { ArcaError } from '../errors.ts';
import type { Repository } from '../repository.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';

/** A set of blob IDs, held as 32-character binary strings (about 70 bytes per blob in V8). */
export class BlobSet {
  private readonly ids = new Set<string>();

  add(id: Buffer): boolean {
    const key = id.toString('latin1');
    if (this.ids.has(key)) return false;
    this.ids.add(key);
    return true;
  }

  has(id: Buffer): boolean {
    return this.ids.has(id.toString('latin1'));
  }

  get size(): number {
    return this.ids.size;
  }
}

export class MarkError extends ArcaError {
  constructor(snapshot: string, detail: string) {
    super('ARCA_ERR_MARK', `Cannot tell which data snapshot ${snapshot.slice(0, 8)} uses (${detail}); nothing was deleted. Run "arca check" and "arca repair" first.`);
  }
}

/**
 * Adds to `used` every blob reachable from the given snapshots: their trees and the chunks of
 * their files. A tree that cannot be read stops the mark, because deleting without knowing what
 * is used could delete what is used.
 */
export async function markSnapshots(repo: Repository, snapshotIds: readonly string[], used: BlobSet): Promise<void> {
  for (const id of snapshotIds) {
    let root: Buffer;
    try {
      root = Buffer.from((await repo.loadSnapshot(id)).tree, 'hex');
    } catch (err) {
      if (err instanceof ObjectNotFoundError) continue; // Forgotten since the listing: uses nothing now.
      throw new MarkError(id, err instanceof Error ? err.message : String(err));
    }
    const pending = [root];
    for (let tree = pending.pop(); tree !== undefined; tree = pending.pop()) {
      if (!used.add(tree)) continue;
      let nodes;
      try {
        nodes = (await repo.loadTree(tree)).nodes;
      } catch (err) {
        throw new MarkError(id, err instanceof Error ? err.message : String(err));
      }
      for (const node of nodes) {
        if (node.type === 'dir') pending.push(node.subtree);
        else if (node.type === 'file') for (const chunk of node.content) used.add(chunk);
      }
    }
  }
}
