import type { Repository } from '../../repository/repository.ts';
import { WorkerPool, workerSetupFor } from '../../engine/pool/worker-pool.ts';

/**
 * Runs `fn` with a worker pool for `repo`, always shutting the pool down. A backup's pool
 * spools the packs it writes in `spoolDir`, and may compress at another level than the
 * repository's.
 */
export async function withPool<T>(repo: Repository, fn: (pool: WorkerPool) => Promise<T>, backup: { spoolDir?: string; compressionLevel?: number } = {}): Promise<T> {
  const size = Number(process.env.ARCA_WORKERS ?? '') || undefined;
  const pool = new WorkerPool(workerSetupFor(repo.keys, repo.config, backup), size);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}
