import { contentParts, type ByteRange, type ObjectContent, type ObjectInfo, type Storage } from '../../repository/storage/storage.ts';

/** Requests and bytes of one kind of object (the first part of its name: data, index, ...). */
export interface RequestCounts {
  gets: number;
  getBytes: number;
  puts: number;
  putBytes: number;
  stats: number;
  lists: number;
  deletes: number;
}

const zero = (): RequestCounts => ({ gets: 0, getBytes: 0, puts: 0, putBytes: 0, stats: 0, lists: 0, deletes: 0 });

/** A Storage wrapper (for tests and benchmarks) that counts the requests reaching the storage below it. */
export class CountingStorage implements Storage {
  readonly location: string;
  readonly byKind = new Map<string, RequestCounts>();
  private readonly inner: Storage;

  constructor(inner: Storage) {
    this.inner = inner;
    this.location = inner.location;
  }

  /** Totals over every kind. */
  get total(): RequestCounts {
    const sum = zero();
    for (const c of this.byKind.values()) for (const key of Object.keys(sum) as Array<keyof RequestCounts>) sum[key] += c[key];
    return sum;
  }

  reset(): void {
    this.byKind.clear();
  }

  private counts(name: string): RequestCounts {
    const kind = name.split('/')[0] ?? name;
    let c = this.byKind.get(kind);
    if (!c) {
      c = zero();
      this.byKind.set(kind, c);
    }
    return c;
  }

  async put(name: string, data: ObjectContent): Promise<void> {
    const c = this.counts(name);
    c.puts++;
    for (const part of contentParts(data)) c.putBytes += part.byteLength;
    await this.inner.put(name, data);
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    const c = this.counts(name);
    c.gets++;
    const bytes = await this.inner.get(name, range);
    c.getBytes += bytes.length;
    return bytes;
  }

  stat(name: string): Promise<ObjectInfo> {
    this.counts(name).stats++;
    return this.inner.stat(name);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.counts(prefix === '' ? '/' : prefix).lists++;
    return this.inner.list(prefix);
  }

  delete(name: string): Promise<void> {
    this.counts(name).deletes++;
    return this.inner.delete(name);
  }
}
