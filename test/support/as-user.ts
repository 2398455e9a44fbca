import { spawn } from 'node:child_process';
import { CLI, testEnv, type RunOptions, type RunResult } from './cli.ts';

/** An unprivileged user to run the CLI as (root reads every file whatever its mode). */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/** The conventional "nobody" user and group. */
export const NOBODY: RunAs = { uid: 65534, gid: 65534 };

/** Whether this process runs as root: it may switch users, chown and mknod. CI runs as root. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Runs `arca ARGS...` as another user and collects its output. The repository, the paths it
 * reads and the working directory must be accessible to that user.
 */
export function runArcaAs(user: RunAs, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawn(process.execPath, ['--no-warnings', CLI, ...args], {
    env: testEnv(options.env),
    cwd: options.cwd ?? '/',
    uid: user.uid,
    gid: user.gid,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); });
  });
}
