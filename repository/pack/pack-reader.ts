import { blake3 } from '@napi-rs/blake-hash';
import type { Storage } from '../storage/storage.ts';
import { decodePackHeader, headerLengthFromTrailer, TRAILER_LENGTH, type PackBlob } from './pack-header.ts';

/** Whether a pack's bytes hash to its ID (its object name). */
export function packMatchesId(id: Buffer, bytes: Buffer): boolean {
  return blake3(bytes).equals(id);
}

/** The blobs listed in the header of a pack held whole in memory. */
export function parsePack(encKey: Buffer, bytes: Buffer): PackBlob[] {
  if (bytes.length < TRAILER_LENGTH) throw new PackContentError(`pack of ${bytes.length} bytes is too short to have a header`);
  const headerLength = headerLengthFromTrailer(bytes.subarray(bytes.length - TRAILER_LENGTH), bytes.length);
  const headerStart = bytes.length - TRAILER_LENGTH - headerLength;
  return decodePackHeader(encKey, bytes.subarray(headerStart, bytes.length - TRAILER_LENGTH), bytes.length);
}

/** Reads only the header of a stored pack of `size` bytes: two range reads. */
export async function readPackHeader(storage: Storage, encKey: Buffer, name: string, size: number): Promise<PackBlob[]> {
  if (size < TRAILER_LENGTH) throw new PackContentError(`pack of ${size} bytes is too short to have a header`);
  const trailer = await storage.get(name, { offset: size - TRAILER_LENGTH, length: TRAILER_LENGTH });
  const headerLength = headerLengthFromTrailer(trailer, size);
  const header = await storage.get(name, { offset: size - TRAILER_LENGTH - headerLength, length: headerLength });
  return decodePackHeader(encKey, header, size);
}

export class PackContentError extends Error {
  readonly code = 'ARCA_ERR_PACK_CONTENT';
}
