/** What a running backup or restore has done so far; the CLI renders it, the agent reports it. */
export interface Progress {
  readonly filesDone: number;
  readonly bytesDone: number;
  /** Totals from the scanner; undefined while it is still counting. */
  readonly filesTotal: number | undefined;
  readonly bytesTotal: number | undefined;
  readonly elapsedSeconds: number;
}

/** A file or directory that could not be read; the backup goes on without it. */
export interface ItemError {
  readonly path: string;
  readonly message: string;
}

export interface Reporter {
  progress?(progress: Progress): void;
  error?(error: ItemError): void;
}
