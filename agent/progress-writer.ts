/**
 * Progress into an object's status at most once per interval, however often the engine reports:
 * the newest report is kept and written when the interval has passed, one write at a time, and
 * nothing after stop() (the final status must not be overwritten by a late progress write).
 */
import type { Progress } from '../engine/index.ts';

/** The status's progress block (kube/api/fields.ts Progress). */
export interface StatusProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone?: number;
  filesTotal?: number;
  bytesPerSecond?: number;
  percent?: number;
}

export function statusProgress(p: Progress): StatusProgress {
  const bytesTotal = Math.max(p.bytesTotal ?? p.bytesDone, p.bytesDone);
  return {
    bytesDone: p.bytesDone,
    bytesTotal,
    filesDone: p.filesDone,
    ...(p.filesTotal === undefined ? {} : { filesTotal: Math.max(p.filesTotal, p.filesDone) }),
    bytesPerSecond: p.elapsedSeconds > 0 ? Math.round(p.bytesDone / p.elapsedSeconds) : 0,
    ...(p.bytesTotal === undefined ? {} : { percent: bytesTotal === 0 ? 100 : Math.min(100, Math.floor((p.bytesDone * 100) / bytesTotal)) }),
  };
}

export class ProgressWriter {
  private latest: StatusProgress | undefined;
  private lastWrite = 0;
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly write: (progress: StatusProgress) => Promise<void>;

  constructor(intervalMs: number, write: (progress: StatusProgress) => Promise<void>) {
    this.intervalMs = intervalMs;
    this.write = write;
  }

  report(progress: Progress): void {
    if (this.stopped) return;
    this.latest = statusProgress(progress);
    this.schedule();
  }

  /** No more writes; resolves once a write under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.writing;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.writing !== undefined) return;
    const wait = Math.max(0, this.lastWrite + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const progress = this.latest;
      this.latest = undefined;
      if (progress === undefined || this.stopped) return;
      this.lastWrite = Date.now();
      // write() logs its own failures: a lost progress update is not worth more.
      this.writing = this.write(progress).catch(() => undefined).finally(() => {
        this.writing = undefined;
        if (this.latest !== undefined) this.schedule();
      });
    }, wait);
  }
}
