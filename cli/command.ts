import { statSync } from 'node:fs';
import path from 'node:path';
import type { GlobalOptions } from './context.ts';
import { UsageError } from '../repository/errors.ts';

/** Option values as a command's run() sees them, keyed by the long option name ("dry-run"). */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/**
 * One option of a command: the parser, `--help`, docs/cli.md and the shell completions are all
 * built from these.
 */
export interface OptionSpec {
  /** A flag, or an option that takes a value. */
  readonly type: 'boolean' | 'string';
  /** May be given more than once; run() gets every value in order. */
  readonly multiple?: boolean;
  /** A one-letter alias ("r" for -r). */
  readonly short?: string;
  /** The value's name in help texts ("GLOB"); options of type "string" need one. */
  readonly value?: string;
  readonly description: string;
  /** Accepted but left out of help texts and docs (imports and tests). */
  readonly hidden?: boolean;
  /** What the shell completes the value with: a file, a directory, or one of these words. */
  readonly complete?: 'file' | 'dir' | readonly string[];
  /** Checks one value before run() is called; throws a UsageError that says what to write instead. */
  readonly check?: (value: string, flag: string) => void;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** One `arca` subcommand: its arguments, options and what it does. run() returns the exit code. */
export interface Command {
  readonly name: string;
  /** The positional arguments as shown after the command name ("SNAPSHOT [PATH]"). */
  readonly args: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Further paragraphs for `arca CMD --help` and docs/cli.md. */
  readonly details?: string;
  /** Words the shell completes the first argument with ("index", "snapshots"). */
  readonly actions?: readonly string[];
  readonly options: OptionSpecs;
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

/** The zstd levels `--compression-level` accepts: 0 stores blobs uncompressed. */
export const COMPRESSION_LEVELS = { min: 0, max: 19 } as const;

/** `--compression-level N`, checked; undefined when not given. */
export function compressionLevel(values: OptionValues): number | undefined {
  const text = str(values, 'compression-level');
  if (text === undefined) return undefined;
  const level = Number(text);
  if (!/^\d+$/.test(text) || level < COMPRESSION_LEVELS.min || level > COMPRESSION_LEVELS.max) {
    throw new UsageError(`--compression-level "${text}" is not a zstd level from ${COMPRESSION_LEVELS.min} (no compression) to ${COMPRESSION_LEVELS.max}.`);
  }
  return level;
}

/**
 * Refuses a relative path pattern with a "/" in it: inside a snapshot every path is absolute
 * (as `arca ls` shows them), so "src/db" would silently match nothing. A pattern without "/"
 * matches a name at any depth and is fine.
 */
export function checkPathPattern(pattern: string, flag: string): void {
  if (!pattern.includes('/') || pattern.startsWith('/')) return;
  throw new UsageError(
    `${flag} "${pattern}" is a relative path, which matches nothing: a pattern with "/" matches the whole absolute path `
    + '(such as /data/app/src/db, as "arca ls SNAPSHOT" lists them), and a pattern without "/" matches a name at any depth.',
  );
}

/** A directory to write into: missing (it will be created) or a directory, never a file. */
export function checkDirectoryTarget(target: string, flag: string): void {
  // The target, or the nearest of its parents that exists, must be a directory.
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    const stats = statSync(dir, { throwIfNoEntry: false });
    if (stats === undefined && dir !== path.dirname(dir)) continue;
    if (stats?.isDirectory() !== true) throw new UsageError(`${flag} ${target}: ${dir} is not a directory; give a directory to restore into (it is created if missing).`);
    return;
  }
}

/** The --host/--tag/--path options that choose snapshots (also what "latest" means). */
export const SNAPSHOT_FILTER_OPTIONS: OptionSpecs = {
  host: { type: 'string', value: 'HOST', description: 'only snapshots made on HOST' },
  tag: { type: 'string', multiple: true, value: 'TAG', description: 'only snapshots with tag TAG; repeat for several (a snapshot needs all of them)' },
  path: {
    type: 'string', multiple: true, value: 'PATH', complete: 'dir',
    description: 'only snapshots that include PATH (relative paths are resolved against the current directory, as backup records them); repeat: all of them',
  },
};
