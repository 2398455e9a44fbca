/**
 * Repository maintenance as `arca prune` then `arca check --read-data-subset` do it, for a caller
 * that runs it in its own process (the controller, for a local-path repository no Job can reach).
 * Each step opens the repository anew without a cache: both load every index file into the
 * repository's in-memory index, which must not be shared with other users of an open repository.
 */
import { Checker } from '../repository/check/checker.ts';
import { parseReadDataSubset } from '../repository/check/read-data-selection.ts';
import type { CheckReport } from '../repository/check/report.ts';
import { DEFAULT_LEASE_TIMING, type LeaseOptions } from '../repository/maintenance/leases.ts';
import { prune, type PruneReport } from '../repository/maintenance/prune.ts';
import { openRepository, type RepositoryOptions } from '../repository/open-repository.ts';

export interface MaintainRepositoryOptions {
  /** As `arca prune --max-unused`. */
  readonly maxUnusedPercent: number;
  /** As `arca check --read-data-subset`: `N%` or `N/M`. */
  readonly readDataSubset: string;
  /** The prune's lease (default: the default timings). */
  readonly lease?: LeaseOptions | undefined;
}

export interface MaintenanceOutcome {
  readonly prune: PruneReport;
  readonly check: CheckReport;
}

/** Prunes, then checks (only after prune succeeded, as the maintenance Job orders them). */
export async function maintainRepository(repository: RepositoryOptions, options: MaintainRepositoryOptions): Promise<MaintenanceOutcome> {
  const readData = parseReadDataSubset(options.readDataSubset);
  const uncached = { ...repository, cacheDir: undefined };
  const pruning = await openRepository(uncached);
  let pruned: PruneReport;
  try {
    pruned = await prune(pruning, { maxUnusedPercent: options.maxUnusedPercent, dryRun: false, lease: options.lease ?? { timing: DEFAULT_LEASE_TIMING } });
  } finally {
    await pruning.close();
  }
  const checking = await openRepository(uncached);
  try {
    return { prune: pruned, check: await new Checker(checking).run({ readData }) };
  } finally {
    await checking.close();
  }
}
