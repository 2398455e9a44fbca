import type { ItemError, Progress, Reporter } from '../agent/backup/progress.ts';
import { formatBytes, formatDuration } from './format.ts';

export interface OutputOptions {
  readonly json: boolean;
  readonly quiet: boolean;
}

/** Writes one JSON object per line (the --json contract). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
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
      const eta = p.bytesTotal !== undefined && rate > 0 ? `, ETA ${formatDuration((p.bytesTotal - p.bytesDone) / rate)}` : '';
      process.stderr.write(`\r[${formatDuration(p.elapsedSeconds)}] ${p.filesDone} files, ${formatBytes(p.bytesDone)}, ${formatBytes(rate)}/s${eta}\x1b[K`);
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
