/**
 * Plaintext binary encoding of an index file: which blobs live where in which
 * packs. Compression, encryption and authentication happen in another layer;
 * this codec only guarantees that structurally malformed input is rejected
 * with `IndexFormatError` (it cannot detect a changed id or offset: that is
 * what the authenticated encryption layer is for).
 *
 * Layout, version 1 (all integers unsigned little-endian):
 *
 *   offset  size  field
 *        0     7  magic, ASCII "ARCAIDX"
 *        7     1  format version (1)
 *        8     4  S = number of superseded index file ids
 *       12     4  P = number of packs
 *       16     4  B = number of blobs, summed over all packs
 *       20  32*S  ids of the older index files this one replaces
 *           then P pack sections, each:
 *                32  pack id
 *                 4  blob count of this pack
 *           45*count blob records, each:
 *                 1  type (0 = data, 1 = tree)
 *                32  blob id
 *                 4  offset of the stored blob in the pack
 *                 4  length of the stored blob (>= 1; offset + length <= 2^32)
 *                 4  rawLength, uncompressed plaintext length
 *
 * The file length is exactly 20 + 32*S + 36*P + 45*B bytes.
 */
import { constants as bufferConstants } from 'node:buffer';
import type { BlobIndex } from './blob-index.ts';
import { IndexArgumentError, IndexFormatError } from './errors.ts';
import { checkId, checkLocationFields, ID_LENGTH, MAX_PACK_END, type IndexBlob } from './types.ts';


/** One blob as recorded in an index file. */
/** The blobs of one pack as recorded in an index file. */
export interface IndexPack {
  packId: Buffer;
  blobs: IndexBlob[];
}

/** A decoded index file. */
export interface DecodedIndexFile {
  packs: IndexPack[];
  /** Ids of older index files this one replaces (compaction). */
  supersedes: Buffer[];
}

export interface EncodeIndexFileOptions {
  /** Ids of older index files this one replaces. */
  supersedes?: Buffer[];
}

export interface IndexFileEncoderOptions extends EncodeIndexFileOptions {
  /**
   * Bytes that go before the file in the same buffer, for an object that embeds an index file
   * (a prune plan), so a large one is not copied once more to put a header in front.
   */
  prefix?: Buffer;
}

export interface DecodeIndexFileOptions {
  /** Name of the file being decoded, used in error messages. */
  source?: string;
}

/** Result of `loadIndexFile`. */
export interface LoadIndexFileResult {
  supersedes: Buffer[];
  packCount: number;
  blobCount: number;
  /** Blobs that were new to the index (the others were already present). */
  added: number;
}

export const INDEX_FILE_MAGIC = 'ARCAIDX';
export const INDEX_FILE_VERSION = 1;

const MAGIC = Buffer.from(INDEX_FILE_MAGIC, 'ascii');
const HEADER_BYTES = 20;
const PACK_HEADER_BYTES = ID_LENGTH + 4;
const BLOB_RECORD_BYTES = 1 + ID_LENGTH + 12;
const UINT32_MAX = 0xffff_ffff;

const TYPE_DATA = 0;
const TYPE_TREE = 1;

/** Exact encoded size in bytes of an index file with these counts. */
export function indexFileSize(supersedesCount: number, packCount: number, blobCount: number): number {
  return HEADER_BYTES + ID_LENGTH * supersedesCount + PACK_HEADER_BYTES * packCount + BLOB_RECORD_BYTES * blobCount;
}

/**
 * Encodes packs and their blobs as an index file. Throws `IndexArgumentError`
 * for invalid ids, locations, or counts that do not fit the format.
 */
export function encodeIndexFile(packs: IndexPack[], opts?: EncodeIndexFileOptions): Buffer {
  let blobCount = 0;
  for (const pack of packs) blobCount += pack.blobs.length;
  const encoder = new IndexFileEncoder(packs.length, blobCount, opts);
  for (const pack of packs) encoder.addPack(pack.packId, pack.blobs);
  return encoder.finish();
}

/**
 * Writes an index file one pack at a time, so that a large one (a prune plan's) never needs
 * all its entries as objects at once. The header declares the counts, so they are given up
 * front; `finish` checks that exactly that many packs and blobs were added. Invalid ids,
 * locations or counts throw `IndexArgumentError`.
 */
export class IndexFileEncoder {
  private readonly out: Buffer;
  private readonly packCount: number;
  private readonly blobCount: number;
  private packsAdded = 0;
  private blobsAdded = 0;
  private pos: number;

  constructor(packCount: number, blobCount: number, opts?: IndexFileEncoderOptions) {
    const supersedes = opts?.supersedes ?? [];
    supersedes.forEach((id, i) => {
      checkId(id, `supersedes[${i}]`);
    });
    if (supersedes.length > UINT32_MAX || packCount > UINT32_MAX || blobCount > UINT32_MAX) {
      throw new IndexArgumentError(
        `an index file holds at most 2^32 - 1 superseded ids, packs and blobs (got ${supersedes.length}, ${packCount}, ${blobCount}); split it into several index files.`,
      );
    }
    const prefix = opts?.prefix ?? Buffer.alloc(0);
    const size = indexFileSize(supersedes.length, packCount, blobCount);
    if (prefix.length + size > bufferConstants.MAX_LENGTH) {
      throw new IndexArgumentError(`an index file of ${size} bytes exceeds the maximum Buffer size; split it into several index files.`);
    }
    this.packCount = packCount;
    this.blobCount = blobCount;
    this.out = Buffer.alloc(prefix.length + size);
    prefix.copy(this.out, 0);
    const start = prefix.length;
    MAGIC.copy(this.out, start);
    this.out.writeUInt8(INDEX_FILE_VERSION, start + 7);
    this.out.writeUInt32LE(supersedes.length, start + 8);
    this.out.writeUInt32LE(packCount, start + 12);
    this.out.writeUInt32LE(blobCount, start + 16);
    this.pos = start + HEADER_BYTES;
    for (const id of supersedes) {
      id.copy(this.out, this.pos);
      this.pos += ID_LENGTH;
    }
  }

  addPack(packId: Buffer, blobs: readonly IndexBlob[]): void {
    const p = this.packsAdded;
    checkId(packId, `packs[${p}].packId`);
    blobs.forEach((blob, b) => {
      checkId(blob.id, `packs[${p}].blobs[${b}].id`);
      checkLocationFields(blob, `packs[${p}].blobs[${b}]`);
    });
    if (p + 1 > this.packCount || this.blobsAdded + blobs.length > this.blobCount) {
      throw new IndexArgumentError(`packs[${p}] goes past the ${this.packCount} packs and ${this.blobCount} blobs declared for this index file.`);
    }
    const out = this.out;
    let pos = this.pos;
    packId.copy(out, pos);
    out.writeUInt32LE(blobs.length, pos + ID_LENGTH);
    pos += PACK_HEADER_BYTES;
    for (const blob of blobs) {
      out.writeUInt8(blob.type === 'tree' ? TYPE_TREE : TYPE_DATA, pos);
      blob.id.copy(out, pos + 1);
      out.writeUInt32LE(blob.offset, pos + 1 + ID_LENGTH);
      out.writeUInt32LE(blob.length, pos + 5 + ID_LENGTH);
      out.writeUInt32LE(blob.rawLength, pos + 9 + ID_LENGTH);
      pos += BLOB_RECORD_BYTES;
    }
    this.pos = pos;
    this.packsAdded++;
    this.blobsAdded += blobs.length;
  }

  /** The prefix and the encoded file; throws `IndexArgumentError` if fewer packs or blobs were added than declared. */
  finish(): Buffer {
    if (this.packsAdded !== this.packCount || this.blobsAdded !== this.blobCount) {
      throw new IndexArgumentError(
        `the index file declares ${this.packCount} packs and ${this.blobCount} blobs, but ${this.packsAdded} packs and ${this.blobsAdded} blobs were added.`,
      );
    }
    return this.out;
  }
}

interface Header {
  supersedesCount: number;
  packCount: number;
  blobCount: number;
}

function formatError(source: string | undefined, problem: string): IndexFormatError {
  const what = source === undefined ? 'index file' : `index file ${source}`;
  return new IndexFormatError(
    `${what} is malformed: ${problem}. The file is damaged or was not written by Arca; restore it from a copy or rebuild the index from the packs.`,
  );
}

/**
 * Checks every structural property of an encoded index file without
 * allocating: header, version, exact length, per-pack counts, type codes and
 * byte ranges. Throws `IndexFormatError` on the first problem.
 */
function validateStructure(buf: Buffer, source: string | undefined): Header {
  if (!Buffer.isBuffer(buf)) {
    throw new IndexArgumentError('decodeIndexFile expects a Buffer holding the decrypted, decompressed index file.');
  }
  if (buf.length < HEADER_BYTES) {
    throw formatError(source, `it is ${buf.length} bytes long, shorter than the ${HEADER_BYTES}-byte header (truncated)`);
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw formatError(source, `it does not start with the "${INDEX_FILE_MAGIC}" magic bytes`);
  }
  const version = buf.readUInt8(7);
  if (version > INDEX_FILE_VERSION) {
    const what = source === undefined ? 'index file' : `index file ${source}`;
    throw new IndexFormatError(
      `${what} uses format version ${version}, but this Arca reads only version ${INDEX_FILE_VERSION}; it was probably written by a newer Arca: upgrade Arca to use this repository.`,
    );
  }
  if (version !== INDEX_FILE_VERSION) {
    throw formatError(source, `its format version is ${version}, which no Arca release has written`);
  }
  const supersedesCount = buf.readUInt32LE(8);
  const packCount = buf.readUInt32LE(12);
  const blobCount = buf.readUInt32LE(16);
  const expected = indexFileSize(supersedesCount, packCount, blobCount);
  if (buf.length !== expected) {
    const how = buf.length < expected ? 'truncated' : `${buf.length - expected} trailing bytes`;
    throw formatError(
      source,
      `its header declares ${supersedesCount} superseded ids, ${packCount} packs and ${blobCount} blobs, which take ${expected} bytes, but it is ${buf.length} bytes long (${how})`,
    );
  }
  let pos = HEADER_BYTES + ID_LENGTH * supersedesCount;
  let blobsLeft = blobCount;
  for (let p = 0; p < packCount; p++) {
    const count = buf.readUInt32LE(pos + ID_LENGTH);
    pos += PACK_HEADER_BYTES;
    if (count > blobsLeft) {
      throw formatError(
        source,
        `pack #${p} declares ${count} blobs but only ${blobsLeft} of the ${blobCount} blobs in the header are left`,
      );
    }
    blobsLeft -= count;
    for (let b = 0; b < count; b++) {
      const type = buf.readUInt8(pos);
      if (type !== TYPE_DATA && type !== TYPE_TREE) {
        throw formatError(source, `blob #${b} of pack #${p} has unknown type code ${type}`);
      }
      const offset = buf.readUInt32LE(pos + 1 + ID_LENGTH);
      const length = buf.readUInt32LE(pos + 5 + ID_LENGTH);
      if (length === 0) {
        throw formatError(source, `blob #${b} of pack #${p} has a stored length of 0`);
      }
      if (offset + length > MAX_PACK_END) {
        throw formatError(
          source,
          `blob #${b} of pack #${p} spans bytes ${offset}..${offset + length}, past the 4 GiB pack size limit`,
        );
      }
      pos += BLOB_RECORD_BYTES;
    }
  }
  if (blobsLeft !== 0) {
    throw formatError(
      source,
      `its packs hold ${blobCount - blobsLeft} blobs in total but the header declares ${blobCount}`,
    );
  }
  return { supersedesCount, packCount, blobCount };
}

function copyId(buf: Buffer, pos: number): Buffer {
  const id = Buffer.allocUnsafe(ID_LENGTH);
  buf.copy(id, 0, pos, pos + ID_LENGTH);
  return id;
}

function readSupersedes(buf: Buffer, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(copyId(buf, HEADER_BYTES + i * ID_LENGTH));
  return out;
}

/**
 * Decodes an index file. The whole input is validated first; malformed or
 * truncated input throws `IndexFormatError`. Returned ids are copies and do
 * not keep `buf` alive.
 */
export function decodeIndexFile(buf: Buffer, opts?: DecodeIndexFileOptions): DecodedIndexFile {
  const packs: IndexPack[] = [];
  const supersedes = forEachIndexPack(buf, (pack) => packs.push(pack), opts);
  return { packs, supersedes };
}

/** Throws `IndexFormatError` unless `buf` is a well-formed index file (see `decodeIndexFile`); allocates nothing. */
export function validateIndexFile(buf: Buffer, opts?: DecodeIndexFileOptions): void {
  validateStructure(buf, opts?.source);
}

/**
 * Validates an index file, then passes its packs to `visit` one at a time, so that a large
 * file is never decoded into objects all at once. Ids are copies. Returns the superseded ids.
 */
export function forEachIndexPack(buf: Buffer, visit: (pack: IndexPack) => void, opts?: DecodeIndexFileOptions): Buffer[] {
  const header = validateStructure(buf, opts?.source);
  const supersedes = readSupersedes(buf, header.supersedesCount);
  let pos = HEADER_BYTES + ID_LENGTH * header.supersedesCount;
  for (let p = 0; p < header.packCount; p++) {
    const packId = copyId(buf, pos);
    const count = buf.readUInt32LE(pos + ID_LENGTH);
    pos += PACK_HEADER_BYTES;
    const blobs: IndexBlob[] = [];
    for (let b = 0; b < count; b++) {
      blobs.push({
        id: copyId(buf, pos + 1),
        type: buf.readUInt8(pos) === TYPE_TREE ? 'tree' : 'data',
        offset: buf.readUInt32LE(pos + 1 + ID_LENGTH),
        length: buf.readUInt32LE(pos + 5 + ID_LENGTH),
        rawLength: buf.readUInt32LE(pos + 9 + ID_LENGTH),
      });
      pos += BLOB_RECORD_BYTES;
    }
    visit({ packId, blobs });
  }
  return supersedes;
}

/**
 * Validates an index file and adds all its blobs to `index` without building
 * the intermediate `IndexPack` objects (use this to load large repositories).
 * Nothing is added if the file is malformed. Blobs already in the index keep
 * their existing location.
 */
export function loadIndexFile(buf: Buffer, index: BlobIndex, opts?: DecodeIndexFileOptions): LoadIndexFileResult {
  const header = validateStructure(buf, opts?.source);
  const supersedes = readSupersedes(buf, header.supersedesCount);
  let added = 0;
  let pos = HEADER_BYTES + ID_LENGTH * header.supersedesCount;
  for (let p = 0; p < header.packCount; p++) {
    const packId = buf.subarray(pos, pos + ID_LENGTH);
    const count = buf.readUInt32LE(pos + ID_LENGTH);
    pos += PACK_HEADER_BYTES;
    for (let b = 0; b < count; b++) {
      const isNew = index.add(buf.subarray(pos + 1, pos + 1 + ID_LENGTH), {
        packId,
        type: buf.readUInt8(pos) === TYPE_TREE ? 'tree' : 'data',
        offset: buf.readUInt32LE(pos + 1 + ID_LENGTH),
        length: buf.readUInt32LE(pos + 5 + ID_LENGTH),
        rawLength: buf.readUInt32LE(pos + 9 + ID_LENGTH),
      });
      if (isNew) added++;
      pos += BLOB_RECORD_BYTES;
    }
  }
  return { supersedes, packCount: header.packCount, blobCount: header.blobCount, added };
}
