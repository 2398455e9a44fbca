#!/usr/bin/env -S node --max-semi-space-size=4
import { ArcaError } from '../repository/errors.ts';
import { EXIT, exitCodeOf } from './exit-codes.ts';
import { parse } from './program.ts';

/**
 * A reader that went away (`arca ls latest | head -1`) is not an error: stop at once and
 * without a word, with the status a process stopped by SIGPIPE has.
 */
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.brokenPipe);
  throw err;
});

let verbose = false;

async function main(argv: string[]): Promise<number> {
  const invocation = parse(argv);
  if (invocation.kind === 'done') return invocation.exitCode;
  if (invocation.kind === 'entry') return (await invocation.entry.load()).run(invocation.argv);
  verbose = invocation.global.verbose === true;
  return invocation.command.run(invocation.values, invocation.positionals, invocation.global);
}

/** One sentence for the user; the stack only when asked for (-v) or when the error is ours to fix. */
function describe(err: unknown): string {
  if (err instanceof ArcaError) return verbose && err.stack !== undefined ? err.stack : err.message;
  if (isSystemError(err)) return verbose && err.stack !== undefined ? err.stack : `${err.message}.`;
  if (err instanceof Error) return `unexpected error (please report it): ${err.stack ?? err.message}`;
  return String(err);
}

/** An error from the operating system (ENOTDIR, EACCES, ENOSPC...): its message names the path. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`arca: ${describe(err)}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
