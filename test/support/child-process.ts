import type { ChildProcess } from 'node:child_process';

/** Resolves with the first capture group of the first stdout line of `name` matching `pattern`. */
export function waitForLine(name: string, child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => { fail(new Error(`${name} did not start within ${timeoutMs} ms: ${out}${err}`)); }, timeoutMs);
    const onOut = (data: string): void => {
      out += data;
      const match = pattern.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        child.off('exit', onExit);
        child.stdout?.off('data', onOut);
        child.stdout?.resume();
        resolve(match[1]);
      }
    };
    const onExit = (code: number | null): void => { fail(new Error(`${name} exited with ${String(code)} before listening: ${out}${err}`)); };
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(e);
    };
    child.stdout?.setEncoding('utf8').on('data', onOut);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.once('exit', onExit);
  });
}

/** Stops a server process: SIGTERM, then SIGKILL after 5 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve(); }); });
  child.kill('SIGTERM');
  const timer = setTimeout(() => { child.kill('SIGKILL'); }, 5_000);
  await exited;
  clearTimeout(timer);
}
