import type { SealedBlob } from '../../repository/blob/blob-codec.ts';
import { PackSpool, type SpooledPack } from '../../repository/pack/pack-spool.ts';
import { ArcaError } from '../../repository/errors.ts';
import { SPOOL_FAILED, type SpooledPackMessage } from './messages.ts';

/** The error of a spool that could not be written: fatal to the backup (see SPOOL_FAILED). */
class SpoolError extends ArcaError {
  constructor(dir: string, cause: unknown) {
    super(SPOOL_FAILED, `Cannot write a pack under ${dir}: ${cause instanceof Error ? cause.message : String(cause)}.`, { cause });
  }
}

function messageOf(pack: SpooledPack): SpooledPackMessage {
  return { file: pack.file, id: pack.id, size: pack.size, blobs: pack.blobs };
}

/** A worker's PackSpool of data blobs, with its failures made fatal and its packs made messages. */
export class WorkerSpool {
  private readonly dir: string;
  private readonly spool: PackSpool;

  constructor(dir: string, encKey: Buffer, packSize: number) {
    this.dir = dir;
    this.spool = new PackSpool(dir, encKey, packSize);
  }

  /** Spools a sealed data blob; returns the finished pack when it filled one. */
  add(blob: SealedBlob): SpooledPackMessage | undefined {
    return this.attempt(() => this.spool.add('data', blob.id, blob.sealed, blob.rawLength));
  }

  finish(): SpooledPackMessage | undefined {
    return this.attempt(() => this.spool.finish());
  }

  private attempt(step: () => SpooledPack | undefined): SpooledPackMessage | undefined {
    let pack: SpooledPack | undefined;
    try {
      pack = step();
    } catch (err) {
      throw new SpoolError(this.dir, err);
    }
    return pack && messageOf(pack);
  }
}
