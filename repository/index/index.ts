/** Public API of the blob index and the index-file codec. */
export { BlobIndex, type BlobEntry } from './blob-index.ts';
export {
  decodeIndexFile,
  encodeIndexFile,
  indexFileSize,
  loadIndexFile,
  INDEX_FILE_MAGIC,
  INDEX_FILE_VERSION,
  type DecodedIndexFile,
  type DecodeIndexFileOptions,
  type EncodeIndexFileOptions,
  type IndexBlob,
  type IndexPack,
  type LoadIndexFileResult,
} from './index-file.ts';
export {
  IndexArgumentError,
  IndexCapacityError,
  IndexConcurrentModificationError,
  IndexFormatError,
  IndexInternalError,
} from './errors.ts';
export { ID_LENGTH, type BlobLocation, type BlobType } from './types.ts';
