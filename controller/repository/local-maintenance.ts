// Maintenance of local-path repositories, run inside the controller. A Job's pod lands on any
// node and sees nothing of the controller's file system, so the only process known to reach a
// local-path repository is the controller that just opened it to check it. Runs go on in the
// background (a prune can take long) and are looked up by name, as Jobs are.
import { maintainRepository, type MaintenanceOutcome } from '../../engine/index.ts';
import type { Logger } from '../../kube/logger.ts';
import type { RepositoryOptions } from '../../engine/index.ts';
import type { MaintenanceRun } from './maintenance-job.ts';

export interface LocalRunSettings {
  maxUnusedPercent: number;
  readDataSubset: string;
}

export class LocalMaintenance {
  private readonly runs = new Map<string, MaintenanceRun & { repository: string }>();
  private readonly log: Logger;
  /** Called when a run ends: its repository is reconciled to write the outcome. */
  private readonly onFinished: (repository: string) => void;

  constructor(log: Logger, onFinished: (repository: string) => void) {
    this.log = log;
    this.onFinished = onFinished;
  }

  /** The runs of `repository` this process started (finished ones are kept until the next starts). */
  runsOf(repository: string): MaintenanceRun[] {
    return [...this.runs.values()].filter((r) => r.repository === repository);
  }

  start(repository: string, name: string, options: () => Promise<RepositoryOptions>, settings: LocalRunSettings): void {
    if (this.runs.has(name)) return;
    for (const [key, run] of this.runs) if (run.repository === repository && run.outcome !== 'Running') this.runs.delete(key);
    const run: MaintenanceRun & { repository: string } = { repository, name, outcome: 'Running', startTime: new Date() };
    this.runs.set(name, run);
    void (async () => {
      try {
        const outcome = await maintainRepository(await options(), { maxUnusedPercent: settings.maxUnusedPercent, readDataSubset: settings.readDataSubset });
        Object.assign(run, describe(outcome));
      } catch (err) {
        Object.assign(run, { outcome: 'Failed', message: `prune or check stopped: ${err instanceof Error ? err.message : String(err)}` });
      }
      run.completionTime = new Date();
      this.log.info({ repository, run: name, outcome: run.outcome, message: run.message }, 'repository maintenance in the controller finished');
      this.onFinished(repository);
    })();
  }
}

function describe({ prune, check }: MaintenanceOutcome): Pick<MaintenanceRun, 'outcome' | 'message'> {
  const pruned = `prune deleted ${prune.packsDeleted} packs (${prune.bytesReclaimed} bytes), repacked ${prune.packsRepacked}${prune.plansPending > 0 ? `, ${prune.plansPending} plans wait for running backups` : ''}`;
  const checked = `check read ${check.packsRead} of ${check.packsChecked} packs of ${check.snapshotsChecked} snapshots`;
  if (check.problems.length > 0) return { outcome: 'Failed', message: `${pruned}; ${checked} and found ${check.problems.length} errors; run "arca check" for the list.` };
  return { outcome: 'Succeeded', message: `${pruned}; ${checked}: no errors.` };
}
