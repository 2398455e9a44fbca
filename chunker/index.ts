export { ChunkerArgumentError, ChunkerError, ChunkerKeyError, ChunkerParamsError } from './errors.ts';
export { FastCdc } from './fastcdc.ts';
export { GEAR_KEY_LENGTH, gearTable } from './gear.ts';
export {
  DEFAULT_CHUNKER_PARAMS,
  MAX_CHUNK_SIZE_LIMIT,
  MIN_CHUNK_SIZE_LIMIT,
  validateChunkerParams,
  type ChunkerParams,
} from './params.ts';
export { ChunkSplitter, chunkBuffer, chunkStream } from './splitter.ts';
