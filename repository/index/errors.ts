/**
 * Typed errors raised by the blob index and the index-file codec. Every error
 * carries a stable `code` string (for programmatic handling) and a message
 * that says what went wrong and what to do about it.
 */

/** An index file is truncated, malformed or of an unsupported format version. */
export class IndexFormatError extends Error {
  readonly code = 'ARCA_ERR_INDEX_FORMAT';
  override readonly name = 'IndexFormatError';
}

/** A caller passed an invalid blob id, pack id or blob location. */
export class IndexArgumentError extends Error {
  readonly code = 'ARCA_ERR_INDEX_ARGUMENT';
  override readonly name = 'IndexArgumentError';
}

/** A `BlobIndex` was modified while one of its iterators was in use. */
export class IndexConcurrentModificationError extends Error {
  readonly code = 'ARCA_ERR_INDEX_CONCURRENT_MODIFICATION';
  override readonly name = 'IndexConcurrentModificationError';
}

/** A `BlobIndex` reached one of its hard structural limits. */
export class IndexCapacityError extends Error {
  readonly code = 'ARCA_ERR_INDEX_CAPACITY';
  override readonly name = 'IndexCapacityError';
}

/** An internal invariant of the index was violated (a bug in Arca; please report it). */
export class IndexInternalError extends Error {
  readonly code = 'ARCA_ERR_INDEX_INTERNAL';
  override readonly name = 'IndexInternalError';
}
