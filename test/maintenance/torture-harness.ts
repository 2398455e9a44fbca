import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { arcaOk, runArca, startArca, summaryOf, type RunResult } from '../support/cli.ts';
import { SeededRandom } from '../support/seeded-random.ts';

/**
 * The torture test, for any repository the CLI can reach: backup lanes (of different and of
 * overlapping directories) and a forget --prune loop run at once against one repository, and any
 * of their processes may be SIGKILLed at a random moment. Afterwards the caller checks that the
 * repository checks clean, reading every blob, and that every snapshot a process reported as
 * completed (and that retention kept) restores byte-exactly.
 *
 * Lane 0 backs up its own directory, lane 1 its own and lane 0's (which lane 0 changes meanwhile),
 * lanes 2 and up their own and a shared directory.
 *
 * Every random choice (file sizes and bytes, which files to delete, which processes to kill and
 * when, the pauses between prunes) comes from `seed`, one independent stream per lane and for
 * the pruner: the same seed replays a run's choices (the timing of the processes still varies).
 */
export interface TortureConfig {
  /** Seeds every random choice of the run (see above). */
  readonly seed: number;
  /** Working directory: the lanes' directories and restores go here. */
  readonly dir: string;
  /** Arguments naming the repository, e.g. ['--repo', path] or with --s3-endpoint. */
  readonly repoArgs: readonly string[];
  /** Environment of every arca run (on top of ARCA_WORKERS=1 and ARCA_LEASE_TTL_MS). */
  readonly env: Record<string, string | undefined>;
  readonly lanes: number;
  /** No new process starts after this long. */
  readonly runForMs: number;
  /** Probability that a process is SIGKILLed, at a uniform moment in killWindowMs. */
  readonly killChance: number;
  readonly killWindowMs: readonly [number, number];
  /** The same for forget --prune runs (default killWindowMs): they take longer than backups on slow storage. */
  readonly pruneKillWindowMs?: readonly [number, number];
  /** Each lane round adds a file of up to this many random bytes. */
  readonly maxFileBytes: number;
  /** The shared directory's files: how many, and up to how many bytes each. */
  readonly sharedFiles: number;
  readonly sharedMaxBytes: number;
  /** forget --keep-last per lane. */
  readonly keepLast: number;
  /** ARCA_LEASE_TTL_MS: short, so that the leases of killed processes expire within the test. */
  readonly leaseTtlMs: number;
}

/** File path → SHA-256 of its content. */
export type Manifest = Map<string, string>;

export interface TortureTally {
  backups: number;
  backupsKilled: number;
  /** Lane 1's backups that exited 3: a file of lane 0's vanished while they read it. */
  lane1Partial: number;
  prunes: number;
  prunesKilled: number;
  /** Prunes that found the lease of a killed prune still standing (exit 11: one prune at a time). */
  prunesBusy: number;
  verified: number;
}

export interface TortureRun {
  /** Snapshot ID → manifest of its roots taken just before the backup started, for every backup that exited 0. */
  readonly completed: Map<string, Manifest>;
  /** Processes that failed without being killed (lane 1's backups may exit 3, see runTorture). */
  readonly failures: string[];
  readonly tally: TortureTally;
}

function envOf(config: TortureConfig): Record<string, string | undefined> {
  return { ARCA_WORKERS: '1', ARCA_LEASE_TTL_MS: String(config.leaseTtlMs), ...config.env };
}

/** Runs `arca ARGS` against the configured repository and environment. */
export function arcaIn(config: TortureConfig, args: readonly string[]): Promise<RunResult> {
  return runArca([...args, ...config.repoArgs], { env: envOf(config) });
}

export async function manifestOf(roots: readonly string[]): Promise<Manifest> {
  const out: Manifest = new Map();
  for (const root of roots) {
    for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const full = path.join(entry.parentPath, entry.name);
      // Lane 0 may delete a file that lane 1 is listing: such a file is in neither state.
      const data = await readFile(full).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      });
      if (data) out.set(full, createHash('sha256').update(data).digest('hex'));
    }
  }
  return out;
}

/**
 * A prune that found another one's lease standing: after a prune is killed, until its lease has
 * expired, that is every prune (one at a time); it changed nothing.
 */
export function isBusy(result: RunResult): boolean {
  return result.code === 11 && /another prune/i.test(result.stderr);
}

/** Runs `arca ARGS`, killing it after a random delay in killWindowMs with probability killChance. */
async function runMaybeKilled(config: TortureConfig, random: SeededRandom, args: readonly string[], killWindowMs = config.killWindowMs): Promise<RunResult & { killed: boolean }> {
  const child = startArca([...args, ...config.repoArgs], { env: envOf(config) });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  // Both draws are made every time, so that one decision does not shift the ones after it.
  const kill = random.chance(config.killChance);
  const at = random.int(killWindowMs[0], killWindowMs[1]);
  const killAt = kill ? at : undefined;
  const timer = killAt === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAt);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed: signal === 'SIGKILL' });
    });
  });
}

/** The lanes and the pruner, until runForMs has passed and the last process has ended. */
export async function runTorture(config: TortureConfig): Promise<TortureRun> {
  const { dir } = config;
  const completed = new Map<string, Manifest>();
  const failures: string[] = [];
  const tally: TortureTally = { backups: 0, backupsKilled: 0, lane1Partial: 0, prunes: 0, prunesKilled: 0, prunesBusy: 0, verified: 0 };
  const random = new SeededRandom(config.seed);
  const shared = path.join(dir, 'shared');
  await mkdir(shared);
  const sharedRandom = random.fork('shared');
  for (let i = 0; i < config.sharedFiles; i++) await writeFile(path.join(shared, `s${i}`), sharedRandom.bytes(sharedRandom.int(1, config.sharedMaxBytes)));
  const deadline = Date.now() + config.runForMs;

  const lane = async (n: number): Promise<void> => {
    const own = path.join(dir, `lane${n}`);
    const laneRandom = random.fork(`lane${n}`);
    await mkdir(own);
    const roots = n >= 2 ? [own, shared] : n === 1 ? [own, path.join(dir, 'lane0')] : [own];
    for (let round = 0; Date.now() < deadline; round++) {
      await writeFile(path.join(own, `f${round}`), laneRandom.bytes(laneRandom.int(0, config.maxFileBytes)));
      if (round > 2 && laneRandom.chance(0.3)) await rm(path.join(own, `f${laneRandom.int(0, round)}`), { force: true });
      const manifest = await manifestOf(roots);
      const result = await runMaybeKilled(config, laneRandom, ['backup', '--json', '--quiet', '--tag', `lane=${n}`, ...roots]);
      tally.backups++;
      if (result.killed) tally.backupsKilled++;
      else if (result.code === 0) completed.set(String(summaryOf(result.stdout).snapshot_id), manifest);
      else if (n === 1 && result.code === 3) tally.lane1Partial++;
      else failures.push(`lane ${n} backup exited ${String(result.code ?? result.signal)}: ${result.stderr}`);
    }
  };
  const pruner = async (): Promise<void> => {
    const prunerRandom = random.fork('pruner');
    while (Date.now() < deadline) {
      const result = await runMaybeKilled(config, prunerRandom, ['forget', '--keep-last', String(config.keepLast), '--group-by', 'tag:lane', '--prune', '--quiet'], config.pruneKillWindowMs);
      tally.prunes++;
      if (result.killed) tally.prunesKilled++;
      else if (isBusy(result)) tally.prunesBusy++;
      else if (result.code !== 0) failures.push(`prune exited ${String(result.code ?? result.signal)}: ${result.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, prunerRandom.int(200, 1500)));
    }
  };
  // Lane 1 reads lane 0's directory while lane 0 writes it: a file may vanish under it, which
  // makes a backup exit 3 (partial). A prune may find a killed prune's lease (exit 11, busy). Any
  // other exit of a process that was not killed is a failure.
  await Promise.all([...Array.from({ length: config.lanes }, (_, n) => lane(n)), pruner()]);
  return { completed, failures, tally };
}

/**
 * The end of every torture run. Waits until every lease of a killed process has expired by the
 * storage's clock (its TTL, and half as much again), then runs one clean prune, which must not
 * find any other prune running and must sweep every plan; then `check --read-data` must be
 * clean. Returns the completed snapshots that are still in the repository (retention keeps the
 * last few per lane), for the caller to restore.
 */
export async function finalPruneAndCheck(config: TortureConfig, completed: ReadonlyMap<string, Manifest>): Promise<Array<[string, Manifest]>> {
  await new Promise((resolve) => setTimeout(resolve, config.leaseTtlMs * 1.5 + 500));
  const final = await arcaIn(config, ['prune', '--json']);
  if (final.code !== 0) throw new Error(`the final prune exited ${String(final.code)} (seed ${config.seed}): ${final.stderr}`);
  const report = JSON.parse(final.stdout.trim()) as { plans_pending?: unknown };
  if (report.plans_pending !== 0) throw new Error(`the final prune left plans pending (seed ${config.seed}): ${final.stdout}`);
  const check = await arcaIn(config, ['check', '--read-data']);
  if (check.code !== 0 || !/no errors/.test(check.stdout + check.stderr)) {
    throw new Error(`check --read-data is not clean (exit ${String(check.code)}, seed ${config.seed}):\n${check.stdout}${check.stderr}`);
  }
  return survivingSnapshots(config, completed);
}

/** The completed snapshots that are still in the repository (retention keeps the last few per lane). */
async function survivingSnapshots(config: TortureConfig, completed: ReadonlyMap<string, Manifest>): Promise<Array<[string, Manifest]>> {
  const listed = await arcaIn(config, ['snapshots', '--json']);
  if (listed.code !== 0) throw new Error(`snapshots exited ${String(listed.code)}: ${listed.stderr}`);
  const present = new Set((JSON.parse(listed.stdout) as Array<{ id: string }>).map((s) => s.id));
  return [...completed].filter(([id]) => present.has(id));
}

/**
 * Restores snapshot `id` and compares it with its manifest; returns one line per file that
 * differs (empty: byte-exact). Lane 1's snapshots may miss a file of lane 0's directory that lane
 * 0 was writing; all else must be there with the same content.
 */
export async function restoreMismatches(config: TortureConfig, id: string, manifest: Manifest): Promise<string[]> {
  const target = path.join(config.dir, `restore-${id.slice(0, 8)}`);
  await arcaOk(['restore', id, '--target', target, ...config.repoArgs], { env: envOf(config) });
  const restored = await manifestOf([path.join(target, config.dir)]);
  const mismatches: string[] = [];
  for (const [original, hash] of manifest) {
    const p = path.join(target, original);
    if (p.includes(`${path.sep}lane0${path.sep}`) && !restored.has(p)) continue;
    const got = restored.get(p);
    if (got !== hash) mismatches.push(`${original} in snapshot ${id.slice(0, 8)}: expected ${hash}, restored ${got ?? 'nothing'}`);
  }
  await rm(target, { recursive: true, force: true });
  return mismatches;
}

/** restoreMismatches for every snapshot, `concurrency` restores at a time; returns all mismatches. */
export async function restoreAllMismatches(config: TortureConfig, snapshots: ReadonlyArray<[string, Manifest]>, concurrency: number): Promise<string[]> {
  const mismatches: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < snapshots.length; i = next++) {
      const [id, manifest] = snapshots[i] as [string, Manifest];
      mismatches.push(...await restoreMismatches(config, id, manifest));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return mismatches;
}
