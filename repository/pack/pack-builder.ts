import { Blake3Hasher } from '@napi-rs/blake-hash';
import type { BlobType, SealedBlob } from '../blob/blob-codec.ts';
import { encodePackHeader, type PackBlob } from './pack-header.ts';

/** A finished pack: its bytes and the blobs inside, ready to upload and then index. */
export interface FinishedPack {
  /** BLAKE3-256 of the pack's bytes; also its object name. */
  readonly id: Buffer;
  /** The pack's bytes in order: the sealed blobs, then the header and trailer. */
  readonly parts: readonly Buffer[];
  readonly size: number;
  readonly blobs: readonly PackBlob[];
}

/** Collects sealed blobs until the caller decides the pack is full. */
export class PackBuilder {
  private readonly parts: Buffer[] = [];
  private readonly blobs: PackBlob[] = [];
  private bytes = 0;

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.blobs.length;
  }

  add(type: BlobType, blob: SealedBlob): void {
    this.parts.push(blob.sealed);
    this.blobs.push({ id: blob.id, type, offset: this.bytes, length: blob.sealed.length, rawLength: blob.rawLength });
    this.bytes += blob.sealed.length;
  }

  finish(encKey: Buffer): FinishedPack {
    const header = encodePackHeader(encKey, this.blobs);
    this.parts.push(header);
    const hasher = new Blake3Hasher();
    for (const part of this.parts) hasher.update(part);
    return { id: hasher.digestBuffer(), parts: this.parts, size: this.bytes + header.length, blobs: this.blobs };
  }
}
