import { throwIfCanceled } from '../errors.ts';
import type { ByteRange, CallOptions, ObjectContent, ObjectInfo, Storage } from './storage.ts';

/** `bound`, and the call's own signal if it has one. */
function both(bound: AbortSignal, options: CallOptions | undefined): CallOptions {
  const own = options?.signal;
  return { signal: own === undefined || own === bound ? bound : AbortSignal.any([bound, own]) };
}

/**
 * A storage whose every call is cancelled by one signal: one job's view of a storage shared by
 * many (an agent's repository serves several volume jobs, each cancelled on its own).
 */
export class CancelableStorage implements Storage {
  readonly location: string;
  readonly spoolDir: string | undefined;
  readonly putFile: Storage['putFile'];
  private readonly inner: Storage;
  private readonly signal: AbortSignal;

  constructor(inner: Storage, signal: AbortSignal) {
    this.inner = inner;
    this.signal = signal;
    this.location = inner.location;
    this.spoolDir = inner.spoolDir;
    const putFile = inner.putFile;
    this.putFile = putFile === undefined ? undefined : (name, file, options) => {
      throwIfCanceled(this.signal);
      return putFile(name, file, both(this.signal, options));
    };
  }

  put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    throwIfCanceled(this.signal);
    return this.inner.put(name, data, both(this.signal, options));
  }

  get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    throwIfCanceled(this.signal);
    return this.inner.get(name, range, both(this.signal, options));
  }

  stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    throwIfCanceled(this.signal);
    return this.inner.stat(name, both(this.signal, options));
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    throwIfCanceled(this.signal);
    for await (const info of this.inner.list(prefix, both(this.signal, options))) {
      throwIfCanceled(this.signal);
      yield info;
    }
  }

  delete(name: string, options?: CallOptions): Promise<void> {
    throwIfCanceled(this.signal);
    return this.inner.delete(name, both(this.signal, options));
  }
}
