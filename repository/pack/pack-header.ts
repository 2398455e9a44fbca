import { open, seal, SEAL_OVERHEAD } from '../crypto/seal.ts';
import type { BlobType } from '../blob/blob-codec.ts';

/**
 * A pack is: sealed blob | sealed blob | ... | sealed header | header length (uint32 LE).
 * The header lists each blob in order (type, ID, stored length, raw length), so offsets follow
 * from the lengths; it lets `repair index` rebuild the index from the packs alone.
 */
export interface PackBlob {
  readonly id: Buffer;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

const HEADER_VERSION = 1;
const ENTRY_LENGTH = 1 + 32 + 4 + 4;
const TYPE_CODES: Readonly<Record<BlobType, number>> = { data: 0, tree: 1 };
export const TRAILER_LENGTH = 4;

export class PackHeaderError extends Error {
  readonly code = 'ARCA_ERR_PACK_HEADER';
}

export function encodePackHeader(encKey: Buffer, blobs: readonly PackBlob[]): Buffer {
  const plain = Buffer.allocUnsafe(1 + 4 + blobs.length * ENTRY_LENGTH);
  plain[0] = HEADER_VERSION;
  plain.writeUInt32LE(blobs.length, 1);
  let at = 5;
  for (const blob of blobs) {
    plain[at] = TYPE_CODES[blob.type];
    blob.id.copy(plain, at + 1);
    plain.writeUInt32LE(blob.length, at + 33);
    plain.writeUInt32LE(blob.rawLength, at + 37);
    at += ENTRY_LENGTH;
  }
  const sealed = seal(encKey, 'pack-header', plain);
  const trailer = Buffer.allocUnsafe(TRAILER_LENGTH);
  trailer.writeUInt32LE(sealed.length, 0);
  return Buffer.concat([sealed, trailer]);
}

/** Reads the header length from the last four bytes of a pack of `packSize` bytes. */
export function headerLengthFromTrailer(trailer: Buffer, packSize: number): number {
  if (trailer.length !== TRAILER_LENGTH) throw new PackHeaderError('pack trailer is truncated');
  const length = trailer.readUInt32LE(0);
  if (length < SEAL_OVERHEAD + 5 || length + TRAILER_LENGTH > packSize) {
    throw new PackHeaderError(`pack header length ${length} does not fit a pack of ${packSize} bytes`);
  }
  return length;
}

/** Decodes a sealed header that sits right before the trailer; offsets are recomputed from 0. */
export function decodePackHeader(encKey: Buffer, sealedHeader: Buffer, packSize: number): PackBlob[] {
  const plain = open(encKey, 'pack-header', sealedHeader);
  if (plain[0] !== HEADER_VERSION) throw new PackHeaderError(`unknown pack header version ${String(plain[0])}`);
  if (plain.length < 5) throw new PackHeaderError('pack header is truncated');
  const count = plain.readUInt32LE(1);
  if (plain.length !== 5 + count * ENTRY_LENGTH) throw new PackHeaderError('pack header length does not match its entry count');
  const blobsEnd = packSize - sealedHeader.length - TRAILER_LENGTH;
  const blobs: PackBlob[] = [];
  let offset = 0;
  for (let i = 0, at = 5; i < count; i++, at += ENTRY_LENGTH) {
    const code = plain[at];
    const type: BlobType | undefined = code === 0 ? 'data' : code === 1 ? 'tree' : undefined;
    if (type === undefined) throw new PackHeaderError(`unknown blob type code ${String(code)}`);
    const length = plain.readUInt32LE(at + 33);
    if (offset + length > blobsEnd) throw new PackHeaderError('pack header points past the blob area');
    blobs.push({ id: Buffer.from(plain.subarray(at + 1, at + 33)), type, offset, length, rawLength: plain.readUInt32LE(at + 37) });
    offset += length;
  }
  return blobs;
}
