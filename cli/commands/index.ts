import type { Command } from '../command.ts';
import { backupCommand } from './backup.ts';
import { catCommand } from './cat.ts';
import { checkCommand } from './check.ts';
import { copyCommand } from './copy.ts';
import { diffCommand } from './diff.ts';
import { forgetCommand } from './forget.ts';
import { initCommand } from './init.ts';
import { keyCommand } from './key.ts';
import { leasesCommand } from './leases.ts';
import { lsCommand } from './ls.ts';
import { pruneCommand } from './prune.ts';
import { repairCommand } from './repair.ts';
import { restoreCommand } from './restore.ts';
import { snapshotsCommand } from './snapshots.ts';
import { statsCommand } from './stats.ts';

/** The commands that work on a repository, in the order `arca --help` lists them. */
export const REPOSITORY_COMMANDS: readonly Command[] = [
  initCommand, backupCommand, snapshotsCommand, lsCommand, restoreCommand, diffCommand, statsCommand, checkCommand, forgetCommand, pruneCommand,
  copyCommand, repairCommand, leasesCommand, catCommand, keyCommand,
];

/** An in-cluster entry point: it parses its own options (`arca agent --help`) and is loaded only when run. */
export interface EntryPoint {
  readonly name: string;
  readonly summary: string;
  load(): Promise<{ run(argv: string[]): Promise<number> }>;
}

export const ENTRY_POINTS: readonly EntryPoint[] = [
  { name: 'agent', summary: 'the node agent (a DaemonSet): backs up and restores the pod volumes of its node', load: () => import('../../agent/main.ts') },
  { name: 'controller', summary: 'the controller (a Deployment): schedules, backup sets, restores, sync and maintenance', load: () => import('../../controller/main.ts') },
  { name: 'restore-wait', summary: 'the init container that holds a restored pod until its volumes are back', load: () => import('../../restore-wait/main.ts') },
];
