// Flag parsing for the in-cluster entry points (commander, like the rest of the CLI). Imports only
// commander: restore-wait uses it too.
import { Command, CommanderError, InvalidArgumentError } from 'commander';

export type Parsed<T> = { ok: true; options: T; args: string[] } | { ok: false; exitCode: number };

/** Parses `argv` (without the command name); help and usage errors become an exit code, printed by commander. */
export function parseCommandLine<T>(command: Command, argv: readonly string[]): Parsed<T> {
  command.exitOverride().showHelpAfterError('(run with --help for usage)');
  try {
    command.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { ok: false, exitCode: err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2 };
    throw err;
  }
  return { ok: true, options: command.opts() as T, args: command.args };
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1.');
  return n;
}

export function withDuration(parse: (text: string) => number): (value: string) => number {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

/** `parse`, refusing results below `min`; `describe` says the minimum in the user's terms. */
export function atLeast(parse: (value: string) => number, min: number, describe: string): (value: string) => number {
  return (value) => {
    const n = parse(value);
    if (n < min) throw new InvalidArgumentError(`expected at least ${describe}.`);
    return n;
  };
}

export { Command, Option } from 'commander';
