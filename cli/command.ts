import type { ParseArgsOptionsConfig } from 'node:util';
import type { GlobalOptions } from './context.ts';

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** One `arca` subcommand: its options and what it does. Returns the exit code. */
export interface Command {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  readonly options: ParseArgsOptionsConfig;
  run(values: OptionValues, positionals: string[], global: GlobalOptions): Promise<number>;
}

export function str(values: OptionValues, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

export function strs(values: OptionValues, key: string): string[] {
  const v = values[key];
  return Array.isArray(v) ? v : [];
}

export function flag(values: OptionValues, key: string): boolean {
  return values[key] === true;
}
