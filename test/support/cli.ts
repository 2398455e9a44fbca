import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI entry point, run from source through Node's type stripping (no build needed). */
export const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
}

/** Environment for test runs: a fast KDF and a fixed password unless the test overrides them. */
export function testEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ARCA_KDF_N: '1024',
    ARCA_PASSWORD: 'test-password',
    // Type stripping of the sources on every start costs more than half a second; cache it.
    NODE_COMPILE_CACHE: path.join(os.tmpdir(), 'arca-test-compile-cache'),
    // Arca's own cache: one per test process, never the user's ~/.cache, removed after the run.
    XDG_CACHE_HOME: path.join(process.env.ARCA_TEST_RUN_DIR ?? os.tmpdir(), `arca-test-cache-${process.pid}`),
    // What a killed backup leaves in its temp dir (the pack spool of a remote repository) goes
    // with the run's scratch directory, not into the machine's /tmp.
    ...(process.env.ARCA_TEST_RUN_DIR === undefined ? {} : { TMPDIR: process.env.ARCA_TEST_RUN_DIR }),
    ...extra,
  };
  for (const [k, v] of Object.entries(extra)) if (v === undefined) Reflect.deleteProperty(env, k);
  return env;
}

export function startArca(args: readonly string[], options: RunOptions = {}): ChildProcess {
  return spawn(process.execPath, ['--no-warnings', CLI, ...args], { env: testEnv(options.env), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `arca ARGS...` to completion and collects its output. */
export function runArca(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return collectOutput(startArca(args, options));
}

/** Waits for a started process to end, with what it printed. */
export function collectOutput(child: ChildProcess): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); });
  });
}

/** Like runArca, but throws with the output when the exit code is not `expected`. */
export async function arcaOk(args: readonly string[], options: RunOptions = {}, expected = 0): Promise<RunResult> {
  const result = await runArca(args, options);
  if (result.code !== expected) {
    throw new Error(`arca ${args.join(' ')} exited ${String(result.code)} (expected ${expected})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return result;
}

/** The last JSON line of `--json` output (the summary). */
export function summaryOf(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
}

/** A temporary directory removed by the returned cleanup. */
export async function tempDir(prefix = 'arca-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
