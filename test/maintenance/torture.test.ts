import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, runArca, startArca, summaryOf, tempDir, type RunResult } from '../support/cli.ts';

/**
 * Four backup processes (of different and of overlapping directories) and a forget --prune loop
 * run at once against one repository, and any of them may be SIGKILLed at a random moment.
 * Afterwards the repository must check clean, reading every blob, and every snapshot that a
 * process reported as completed (and that retention kept) must restore byte-exactly.
 */
const LANES = 4;
const RUN_FOR_MS = 35_000;
const KILL_CHANCE = 0.3;
const ENV = { ARCA_WORKERS: '1', ARCA_LEASE_TTL_MS: '3000' };

type Manifest = Map<string, string>;

async function manifestOf(roots: readonly string[]): Promise<Manifest> {
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

/** Runs `arca ARGS`, killing it after a random delay with probability KILL_CHANCE. */
async function runMaybeKilled(args: string[]): Promise<RunResult & { killed: boolean }> {
  const child = startArca(args, { env: ENV });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const killAt = Math.random() < KILL_CHANCE ? randomInt(50, 1500) : undefined;
  const timer = killAt === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAt);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed: signal === 'SIGKILL' });
    });
  });
}

describe('torture: concurrent backups, prune and kills', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  const completed = new Map<string, Manifest>();
  const failures: string[] = [];
  const tally = { backups: 0, backupsKilled: 0, prunes: 0, prunesKilled: 0, verified: 0 };

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('arca-torture-'));
    repo = path.join(dir, 'repo');
    await arcaOk(['init', '--repo', repo]);
  });
  afterAll(async () => cleanup());

  it('loses nothing that was reported complete', { timeout: 300_000 }, async () => {
    const shared = path.join(dir, 'shared');
    await mkdir(shared);
    for (let i = 0; i < 4; i++) await writeFile(path.join(shared, `s${i}`), randomBytes(randomInt(1, 1 << 20)));
    const deadline = Date.now() + RUN_FOR_MS;

    const lane = async (n: number): Promise<void> => {
      const own = path.join(dir, `lane${n}`);
      await mkdir(own);
      // Lanes 2 and 3 also back up the shared directory; lane 1 backs up lane 0's too.
      const roots = n >= 2 ? [own, shared] : n === 1 ? [own, path.join(dir, 'lane0')] : [own];
      for (let round = 0; Date.now() < deadline; round++) {
        await writeFile(path.join(own, `f${round}`), randomBytes(randomInt(0, 3 << 20)));
        if (round > 2 && Math.random() < 0.3) await rm(path.join(own, `f${randomInt(0, round)}`), { force: true });
        const manifest = await manifestOf(roots);
        const result = await runMaybeKilled(['backup', '--repo', repo, '--json', '--quiet', '--tag', `lane=${n}`, ...roots]);
        tally.backups++;
        if (result.killed) tally.backupsKilled++;
        if (result.code === 0) {
          completed.set(String(summaryOf(result.stdout).snapshot_id), manifest);
        } else if (!result.killed && n !== 1) {
          failures.push(`lane ${n} backup exited ${String(result.code)}: ${result.stderr}`);
        }
      }
    };
    const pruner = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const result = await runMaybeKilled(['forget', '--repo', repo, '--keep-last', '3', '--group-by', 'tag:lane', '--prune', '--quiet']);
        tally.prunes++;
        if (result.killed) tally.prunesKilled++;
        if (result.code !== 0 && !result.killed) failures.push(`prune exited ${String(result.code)}: ${result.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, randomInt(200, 1500)));
      }
    };
    await Promise.all([...Array.from({ length: LANES }, (_, n) => lane(n)), pruner()]);

    // Lane 1 reads lane 0's directory while lane 0 writes it: a file may change under it. Only
    // exit codes other than 0 and 3 (some files unreadable) would be failures there.
    expect(failures).toEqual([]);
    expect(completed.size).toBeGreaterThan(LANES);

    // Let the leases of killed processes expire, then one clean prune sweeps every plan.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const final = await arcaOk(['prune', '--repo', repo, '--json'], { env: ENV });
    expect(JSON.parse(final.stdout.trim()) as Record<string, unknown>).toMatchObject({ plansPending: 0 });
    const check = await runArca(['check', '--repo', repo, '--read-data'], { env: ENV });
    expect(check.stdout + check.stderr).toMatch(/no errors/);
    expect(check.code).toBe(0);

    const present = new Set((JSON.parse((await arcaOk(['snapshots', '--repo', repo, '--json'])).stdout) as Array<{ id: string }>).map((s) => s.id));
    const survivors = [...completed].filter(([id]) => present.has(id));
    expect(survivors.length).toBeGreaterThanOrEqual(LANES);
    for (const [id, manifest] of survivors) {
      const target = path.join(dir, `restore-${id.slice(0, 8)}`);
      await arcaOk(['restore', id, '--repo', repo, '--target', target]);
      const restored = await manifestOf([path.join(target, dir)]);
      const expected = new Map([...manifest].map(([p, h]) => [path.join(target, p), h]));
      // Lane 1's snapshots of lane 0's directory may miss a file lane 0 was writing; all else must match.
      for (const [p, h] of expected) {
        if (p.includes(`${path.sep}lane0${path.sep}`) && !restored.has(p)) continue;
        expect(restored.get(p), `${p} in snapshot ${id.slice(0, 8)}`).toBe(h);
      }
      await rm(target, { recursive: true, force: true });
      tally.verified++;
    }
    console.info(`torture: ${JSON.stringify({ ...tally, completed: completed.size })}`);
  });
});
