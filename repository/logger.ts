/**
 * The logger every layer below the entry points writes to: the shape of pino's (an object of
 * fields, then a message), so a long-running process passes a pino logger and the CLI a plain
 * text one. Fields the layers use: `repository` (its location), `snapshot`, `pack`, `object`.
 */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: LogFields): Logger;
}

/** Drops everything: the default where a caller passes no logger. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
