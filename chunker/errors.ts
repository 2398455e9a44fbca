/**
 * Typed errors of the chunker. Callers branch on `code`; users read `message`, which says
 * what was wrong and what to do about it.
 */
export class ChunkerError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Chunker parameters (min/avg/max chunk size) that cannot work. */
export class ChunkerParamsError extends ChunkerError {
  constructor(detail: string) {
    super('ARCA_ERR_CHUNKER_PARAMS', `Invalid chunker parameters: ${detail}`);
  }
}

/** A gear-table key of the wrong type or length. */
export class ChunkerKeyError extends ChunkerError {
  constructor(detail: string) {
    super('ARCA_ERR_CHUNKER_KEY', `Invalid chunker key: ${detail}`);
  }
}

/** A caller passed an out-of-range position or a buffer that is not a Uint8Array. */
export class ChunkerArgumentError extends ChunkerError {
  constructor(detail: string) {
    super('ARCA_ERR_CHUNKER_ARGUMENT', `Invalid chunker argument: ${detail}`);
  }
}
