import type { Repository } from '../../repository/repository.ts';
import { WorkerPool, workerSetupFor } from '../../agent/pool/worker-pool.ts';

/**
 * Runs `fn` with a worker pool for `repo`, always shutting the pool down. A backup's pool
 * spools the packs it writes in `spoolDir`.
 */
export async function withPool<T>(repo: Repository, fn: (pool: WorkerPool) => Promise<T>, spoolDir?: string): Promise<T> {
  const size = Number(process.env.ARCA_WORKERS ?? '') || undefined;
  const pool = new WorkerPool(workerSetupFor(repo.keys, repo.config, spoolDir), size);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}
