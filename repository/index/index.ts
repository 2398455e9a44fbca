/** Public API of the blob index and the index-file codec. */
export { BlobIndex, type BlobEntry, type PackGroups } from './blob-index.ts';
export {
  decodeIndexFile,
  encodeIndexFile,
  forEachIndexPack,
  IndexFileEncoder,
  indexFileSize,
  loadIndexFile,
  validateIndexFile,
  INDEX_FILE_MAGIC,
  INDEX_FILE_VERSION,
  type DecodedIndexFile,
  type DecodeIndexFileOptions,
  type EncodeIndexFileOptions,
  type IndexFileEncoderOptions,
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
export { ID_LENGTH, type BlobLocation, type BlobType, type IndexBlob } from './types.ts';
