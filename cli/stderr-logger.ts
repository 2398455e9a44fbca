import type { LogFields, Logger } from '../repository/logger.ts';

/** One sentence, ending in a full stop. */
const sentence = (message: string): string => (/[.!?]$/.test(message) ? message : `${message}.`);

/**
 * The CLI's logger: plain lines on stderr ("arca: warning: ...."), the fields left out (they
 * are for machines; a person running one command knows which repository it is). Warnings and
 * errors unless --quiet; info and debug only with `verbose`.
 */
export function stderrLogger(options: { readonly quiet: boolean; readonly verbose?: boolean }, write: (line: string) => void = (line) => { process.stderr.write(line); }): Logger {
  const verbose = options.verbose === true && !options.quiet;
  const logger: Logger = {
    debug: (_fields: LogFields, message: string) => { if (verbose) write(`arca: debug: ${sentence(message)}\n`); },
    info: (_fields: LogFields, message: string) => { if (verbose) write(`arca: ${sentence(message)}\n`); },
    warn: (_fields: LogFields, message: string) => { if (!options.quiet) write(`arca: warning: ${sentence(message)}\n`); },
    error: (_fields: LogFields, message: string) => { write(`arca: error: ${sentence(message)}\n`); },
    child: () => logger,
  };
  return logger;
}
