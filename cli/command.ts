import type { ParseArgsOptionsConfig } from 'node:util';
import type { GlobalOptions } from './context.ts';
import { UsageError } from '../repository/errors.ts';

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
