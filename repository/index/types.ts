import { IndexArgumentError } from './errors.ts';

/** Kind of blob stored in a pack: file content chunks or directory trees. */
export type BlobType = 'data' | 'tree';

/** One blob of a pack as an index file records it. */
export interface IndexBlob {
  id: Buffer;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
}

/** Where a blob lives: which pack, and the byte range of its stored form. */
export interface BlobLocation {
  /** 32-byte id (BLAKE3-256) of the pack file holding the blob. */
  packId: Buffer;
  type: BlobType;
  /** Byte offset of the stored (encrypted) blob inside the pack (uint32). */
  offset: number;
  /** Byte length of the stored (encrypted) blob inside the pack (uint32, >= 1). */
  length: number;
  /** Length of the uncompressed plaintext (uint32). */
  rawLength: number;
}

/** Length in bytes of blob ids and pack ids (BLAKE3-256). */
export const ID_LENGTH = 32;

/** Packs are smaller than 4 GiB, so a stored blob must end at or before this byte. */
export const MAX_PACK_END = 0x1_0000_0000;

const UINT32_MAX = 0xffff_ffff;

function isUint32(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= UINT32_MAX;
}

/** Throws `IndexArgumentError` unless `id` is a 32-byte Buffer. */
export function checkId(id: unknown, what: string): asserts id is Buffer {
  if (!Buffer.isBuffer(id) || id.length !== ID_LENGTH) {
    const got = Buffer.isBuffer(id) ? `${id.length} bytes` : typeof id;
    throw new IndexArgumentError(
      `${what} must be a ${ID_LENGTH}-byte Buffer (BLAKE3-256 digest), got ${got}; pass the raw digest, not its hex string.`,
    );
  }
}

/**
 * Validates the numeric fields and type of a blob location (everything except
 * the pack id) and throws `IndexArgumentError` describing the first problem.
 */
export function checkLocationFields(
  loc: { type: unknown; offset: unknown; length: unknown; rawLength: unknown },
  what: string,
): void {
  if (loc.type !== 'data' && loc.type !== 'tree') {
    throw new IndexArgumentError(`${what}: type must be 'data' or 'tree', got ${typeof loc.type === 'string' ? JSON.stringify(loc.type) : typeof loc.type}.`);
  }
  if (!isUint32(loc.offset)) {
    throw new IndexArgumentError(`${what}: offset must be an integer in [0, 2^32), got ${String(loc.offset)}.`);
  }
  if (!isUint32(loc.length) || loc.length === 0) {
    throw new IndexArgumentError(
      `${what}: length (stored size in the pack) must be an integer in [1, 2^32), got ${String(loc.length)}.`,
    );
  }
  if (!isUint32(loc.rawLength)) {
    throw new IndexArgumentError(`${what}: rawLength must be an integer in [0, 2^32), got ${String(loc.rawLength)}.`);
  }
  if (loc.offset + loc.length > MAX_PACK_END) {
    throw new IndexArgumentError(
      `${what}: offset ${loc.offset} + length ${loc.length} extends past the 4 GiB pack size limit.`,
    );
  }
}
