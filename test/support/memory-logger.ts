import type { LogFields, Logger } from '../../repository/logger.ts';

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields: LogFields;
  readonly message: string;
}

/** A Logger that keeps every line (with its child bindings merged in), for tests to read. */
export class MemoryLogger implements Logger {
  readonly lines: LogLine[];
  private readonly bindings: LogFields;

  constructor(lines: LogLine[] = [], bindings: LogFields = {}) {
    this.lines = lines;
    this.bindings = bindings;
  }

  debug(fields: LogFields, message: string): void { this.add('debug', fields, message); }
  info(fields: LogFields, message: string): void { this.add('info', fields, message); }
  warn(fields: LogFields, message: string): void { this.add('warn', fields, message); }
  error(fields: LogFields, message: string): void { this.add('error', fields, message); }

  child(bindings: LogFields): Logger {
    return new MemoryLogger(this.lines, { ...this.bindings, ...bindings });
  }

  /** The messages of the warnings so far. */
  warnings(): string[] {
    return this.lines.filter((l) => l.level === 'warn').map((l) => l.message);
  }

  private add(level: LogLine['level'], fields: LogFields, message: string): void {
    this.lines.push({ level, fields: { ...this.bindings, ...fields }, message });
  }
}

/** A Logger that fails the test on any warning or error (where none may happen). */
export function strictLogger(): Logger {
  const fail = (_fields: LogFields, message: string): never => { throw new Error(message); };
  const logger: Logger = { debug: () => undefined, info: () => undefined, warn: fail, error: fail, child: () => logger };
  return logger;
}
