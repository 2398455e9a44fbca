/**
 * Forgetting snapshots: their objects are deleted; the data they alone used stays until prune.
 * The CLI's `forget` and the controller's retention and deleteSnapshots share it.
 */
import { snapshotName } from '../repository/object-names.ts';
import { mapLimit, type Repository } from '../repository/repository.ts';

/** Snapshot objects deleted at once. */
const DELETE_CONCURRENCY = 8;

/** Deletes the snapshots `ids` (full IDs); one already gone is not an error. */
export async function forgetSnapshots(repo: Repository, ids: readonly string[]): Promise<void> {
  const present = new Set(await repo.listSnapshotIds());
  await mapLimit(ids.filter((id) => present.has(id)), DELETE_CONCURRENCY, (id) => repo.storage.delete(snapshotName(id)));
}
