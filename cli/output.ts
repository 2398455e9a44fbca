import type { ItemError, Progress, Reporter } from '../engine/progress.ts';
import { formatBytes, formatDuration } from './format.ts';

export interface OutputOptions {
  readonly json: boolean;
  readonly quiet: boolean;
}

/**
 * Writes one JSON value on one line: a JSON line of a streaming command, or the one document of
 * another (the convention is in docs/cli.md, "JSON output").
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * The record with its keys in snake_case, the case of every key the CLI prints (reports of the
 * repository layer use camelCase). Only the top level: nested values keep their keys.
 */
export function snakeCaseKeys(record: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value as unknown]));
}

/**
 * Progress goes to stderr on a terminal (a rewritten line) and, with --json, to stdout as
 * "status" lines; errors about single files always go to stderr.
 */
export function cliReporter(options: OutputOptions): Reporter & { done(): void } {
  const interactive = process.stderr.isTTY && !options.quiet && !options.json;
  let drawn = false;
  return {
    progress(p: Progress): void {
      const rate = p.elapsedSeconds > 0 ? p.bytesDone / p.elapsedSeconds : 0;
      if (options.json && !options.quiet) {
        printJson({ message_type: 'status', seconds_elapsed: Math.round(p.elapsedSeconds), files_done: p.filesDone, bytes_done: p.bytesDone, bytes_per_second: Math.round(rate) });
      }
      if (!interactive) return;
      const eta = p.bytesTotal !== undefined && rate > 0 ? `, ETA ${formatDuration(Math.max(0, p.bytesTotal - p.bytesDone) / rate)}` : '';
      const files = p.filesTotal !== undefined ? `${p.filesDone} / ${p.filesTotal}` : `${p.filesDone}`;
      const bytes = p.bytesTotal !== undefined ? `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}` : formatBytes(p.bytesDone);
      process.stderr.write(`\r[${formatDuration(p.elapsedSeconds)}] ${files} files, ${bytes}, ${formatBytes(rate)}/s${eta}\x1b[K`);
      drawn = true;
    },
    error(e: ItemError): void {
      if (drawn) process.stderr.write('\r\x1b[K');
      process.stderr.write(`error: ${e.path}: ${e.message}\n`);
      if (options.json) printJson({ message_type: 'error', item: e.path, error: e.message });
    },
    done(): void {
      if (drawn) process.stderr.write('\n');
    },
  };
}
