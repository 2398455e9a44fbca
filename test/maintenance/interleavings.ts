import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { arcaOk, runArca, startArca, summaryOf, type RunResult } from '../support/cli.ts';

/**
 * CLI processes against one repository, each one held at a named pause point when the test says
 * so (ARCA_TEST_PAUSE_AT: the process blocks, heartbeats included, like a suspended host), with
 * its own lease lifetime and clock skew. What the issue 18 scenario tests and the torture tests share.
 */
export interface RepositoryTarget {
  /** Arguments naming the repository, e.g. ['--repo', path] or with --s3-endpoint. */
  readonly repoArgs: readonly string[];
  /** Environment of every run (credentials); undefined removes a variable. */
  readonly env: Record<string, string | undefined>;
}

export class Arena {
  readonly dir: string;
  readonly target: RepositoryTarget;
  private held = 0;

  /** A local repository in `dir`, unless `target` names another. */
  constructor(dir: string, target: RepositoryTarget = { repoArgs: ['--repo', path.join(dir, 'repo')], env: {} }) {
    this.dir = dir;
    this.target = target;
  }

  async init(): Promise<void> {
    await this.ok(['init']);
  }

  /** A directory of `files` random files of `bytes` each; returns their contents by name. */
  async source(name: string, files: number, bytes: number): Promise<{ dir: string; files: Map<string, Buffer> }> {
    const dir = path.join(this.dir, name);
    await mkdir(dir, { recursive: true });
    const contents = new Map<string, Buffer>();
    for (let i = 0; i < files; i++) {
      const data = randomBytes(bytes);
      await writeFile(path.join(dir, `f${i}`), data);
      contents.set(`f${i}`, data);
    }
    return { dir, files: contents };
  }

  run(args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> {
    return runArca([...args, ...this.target.repoArgs], { env: { ...this.target.env, ...env } });
  }

  async ok(args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> {
    return arcaOk([...args, ...this.target.repoArgs], { env: { ...this.target.env, ...env } });
  }

  async backup(src: string, env: Record<string, string> = {}): Promise<string> {
    return String(summaryOf((await this.ok(['backup', '--json', src], env)).stdout).snapshot_id);
  }

  async forget(id: string): Promise<void> {
    await this.ok(['forget', id]);
  }

  /**
   * Starts `arca ARGS` to be held at `point` (or at each of several points in turn); `reached`
   * and `go` are those of the first, `at(point)` those of any.
   */
  start(args: readonly string[], point: string | readonly string[] | undefined, env: Record<string, string> = {}): HeldProcess {
    const points = point === undefined ? [] : typeof point === 'string' ? [point] : [...point];
    const files = new Map(points.map((p) => [p, path.join(this.dir, `go-${this.held++}`)]));
    const pauseAt = [...files].map(([p, file]) => `${p}:${file}`).join(',');
    const child = startArca([...args, ...this.target.repoArgs], { env: { ...this.target.env, ...env, ...(pauseAt === '' ? {} : { ARCA_TEST_PAUSE_AT: pauseAt }) } });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const done = new Promise<RunResult>((resolve) => { child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); }); });
    const state = { ended: false };
    void done.then(() => { state.ended = true; });
    const at = (p: string): HeldPoint => {
      const file = files.get(p);
      if (file === undefined) throw new Error(`arca ${args.join(' ')} is not held at ${p}`);
      const reached = (async (): Promise<void> => {
        while (!(await access(`${file}.reached`).then(() => true, () => false))) {
          if (state.ended) throw new Error(`arca ${args.join(' ')} ended before reaching ${p}: ${stderr}`);
          await sleep(20);
        }
      })();
      return { reached, go: () => writeFile(file, '') };
    };
    const first = points[0] === undefined ? { reached: Promise.resolve(), go: () => Promise.resolve() } : at(points[0]);
    return { ...first, at, done, stderr: () => stderr, kill: () => { child.kill('SIGKILL'); } };
  }

  /** `check --read-data` output; throws unless it is clean. */
  async checkClean(): Promise<void> {
    const check = await this.run(['check', '--read-data']);
    if (check.code !== 0 || !/no errors/.test(check.stdout + check.stderr)) throw new Error(`check --read-data is not clean (exit ${String(check.code)}):\n${check.stdout}${check.stderr}`);
  }

  /** Restores snapshot `id` and returns the files of `src` that differ from `files` (empty: byte-exact). */
  async restoreMismatches(id: string, src: string, files: ReadonlyMap<string, Buffer>): Promise<string[]> {
    const target = path.join(this.dir, `restore-${id.slice(0, 8)}-${this.held++}`);
    const result = await this.run(['restore', id, '--target', target]);
    const mismatches: string[] = result.code === 0 ? [] : [`restore ${id.slice(0, 8)} exited ${String(result.code)}: ${result.stderr.trim()}`];
    for (const [name, data] of files) {
      const got = await readFile(path.join(target, src, name)).catch(() => undefined);
      if (!got?.equals(data)) mismatches.push(`${name} of ${id.slice(0, 8)}: ${got === undefined ? 'missing' : `sha256 ${createHash('sha256').update(got).digest('hex').slice(0, 12)}`}`);
    }
    await rm(target, { recursive: true, force: true });
    return mismatches;
  }

  async snapshotIds(): Promise<string[]> {
    return (JSON.parse((await this.ok(['snapshots', '--json'])).stdout) as Array<{ id: string }>).map((s) => s.id);
  }
}

export interface HeldPoint {
  /** Resolves once the process is held there. */
  readonly reached: Promise<void>;
  /** Lets it go on. */
  go(): Promise<void>;
}

export interface HeldProcess extends HeldPoint {
  readonly done: Promise<RunResult>;
  at(point: string): HeldPoint;
  /** What it wrote to stderr so far. */
  stderr(): string;
  kill(): void;
}
