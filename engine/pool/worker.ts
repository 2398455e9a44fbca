import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ChunkSplitter, chunkBuffer, FastCdc } from '../../chunker/index.ts';
import { blobId, type BlobKeys } from '../../repository/crypto/master-key.ts';
import { decodeBlobTransient, sealBlob, type SealedBlob } from '../../repository/blob/blob-codec.ts';
import { releaseBuffer } from '../../repository/util/release-buffer.ts';
import { applyMetadata } from '../fs/metadata.ts';
import { createFile, ensureDirectory, inspectExisting, openNewFile } from '../fs/safe-fs.ts';
import { EntryChangedError, openFileChecked } from '../fs/handles.ts';
import { TargetDirs } from '../fs/target-dirs.ts';
import { descriptorBudget } from '../fs/fd-limit.ts';
import { retryWhenExhausted } from '../fs/exhaustion.ts';
import { scanDir } from './scan-dir.ts';
import { WorkerSpool } from './worker-spool.ts';
import {
  BLOB_DAMAGED, type ChunkFileResult, type ChunkFileTask, type FromWorker, type FsBatchResult, type FsBatchTask,
  type StoredBlobMessage, type TaskAnswer, type TaskQuestion, type TaskRequest, type TaskResult, type ToWorker, type WorkerFailure,
  type WorkerSetup, type WriteBlobsTask, failureOf, packIds, transferable,
} from './messages.ts';

/** The CPU side of backup and restore: chunking, hashing, compression, encryption, decoding. */
const setup = workerData as WorkerSetup;
const port = parentPort;
if (!port) throw new Error('worker.ts must run as a worker thread');

const keys: BlobKeys = { encKey: Buffer.from(setup.encKey), idKey: Buffer.from(setup.idKey) };
const cdc = new FastCdc(Buffer.from(setup.chunkerKey), setup.chunker);
/** Reads of 2 MiB keep the memory of four tasks in flight small; the splitter carries across reads. */
const READ_SIZE = 2 << 20;

/** Where sealed data blobs go in a backup: this worker's own pack file. */
const spool = setup.spool ? new WorkerSpool(setup.spool.dir, keys.encKey, setup.spool.packSize) : undefined;

function backupSpool(): WorkerSpool {
  if (!spool) throw new Error('protocol error: a backup task reached a worker that has no spool');
  return spool;
}

const pendingAnswers = new Map<number, (answer: TaskAnswer) => void>();

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

function ask(task: number, question: TaskQuestion, transfer: ArrayBuffer[] = []): Promise<TaskAnswer> {
  return new Promise((resolve) => {
    pendingAnswers.set(task, resolve);
    post({ type: 'question', task, question }, transfer);
  });
}

/** Spools a sealed blob and frees it; a finished pack goes to the main thread to be stored. */
async function spoolBlob(task: number, blob: SealedBlob): Promise<void> {
  const pack = backupSpool().add(blob);
  releaseBuffer(blob.sealed);
  if (pack) await ask(task, { kind: 'pack', pack });
}

/**
 * Hands sealed blobs of a directory scan on: the data blobs are claimed first and spooled (those
 * not claimed are dropped: stored already, or on their way from another file); trees go to the
 * main thread.
 */
async function handOver(task: number, blobs: readonly StoredBlobMessage[]): Promise<void> {
  const data = blobs.filter((blob) => blob.isTree !== true);
  const trees = blobs.filter((blob) => blob.isTree === true);
  if (data.length > 0) {
    const ids = packIds(data.map((blob) => blob.id));
    const answer = await ask(task, { kind: 'claim', ids, bytes: 0 }, [ids.buffer]);
    if (answer.kind !== 'claim') throw new Error('protocol error: expected a claim answer');
    for (const [i, blob] of data.entries()) {
      const sealed = asBuffer(blob.sealed);
      if (answer.mine[i] === true) await spoolBlob(task, { id: asBuffer(blob.id), sealed, rawLength: blob.rawLength });
      else releaseBuffer(sealed);
    }
  }
  if (trees.length > 0) await ask(task, { kind: 'store', blobs: trees }, trees.flatMap((tree) => transferable(tree.sealed)));
}

/** Ends this worker's spooled pack at the end of a backup. */
async function flushSpool(task: number): Promise<{ result: TaskResult; transfer: ArrayBuffer[] }> {
  const pack = spool?.finish();
  if (pack) await ask(task, { kind: 'pack', pack });
  return { result: { kind: 'flush-spool' }, transfer: [] };
}

/** Reads into `buffer` until it is full or the file ends; returns the bytes read. */
function fill(fd: number, buffer: Buffer): number {
  let got = 0;
  while (got < buffer.length) {
    const n = readSync(fd, buffer, got, buffer.length - got, null);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Read buffers are reused across tasks: allocating 8 MiB per small file costs more than reading it. */
const freeBuffers: Buffer[] = [];

/**
 * A file at least this large with no block allocated is all holes (`truncate -s 1P`): its size is
 * recorded with no content, which a restore makes a hole again, instead of reading zeros for ever.
 * Smaller files are read all the same (some file systems report no blocks for data they hold).
 */
const HOLE_ONLY_FROM = 16 << 20;

async function chunkFile(task: number, request: ChunkFileTask): Promise<{ result: ChunkFileResult; transfer: ArrayBuffer[] }> {
  const { fd, st } = openFileChecked(Buffer.from(request.path), { dev: request.dev, ino: request.ino });
  const buffer = freeBuffers.pop() ?? Buffer.allocUnsafe(READ_SIZE);
  try {
    // Read no further than the size listed: a file that grows meanwhile is cut there.
    const limit = Math.min(request.size, Number(st.size));
    if (st.blocks === 0n && limit >= HOLE_ONLY_FROM) {
      const content = packIds([]);
      return { result: { kind: 'chunk-file', content, size: limit, blobs: [] }, transfer: [content.buffer] };
    }
    const splitter = new ChunkSplitter(cdc);
    const ids: Buffer[] = [];
    let size = 0;
    let atEnd = false;
    // Sealed blobs of the previous read, held back so that the last batch rides on the "done" message.
    let heldFresh: StoredBlobMessage[] = [];
    let heldTransfer: ArrayBuffer[] = [];
    while (!atEnd) {
      const got = fill(fd, buffer.subarray(0, Math.min(READ_SIZE, limit - size)));
      atEnd = got < READ_SIZE || size + got >= limit;
      if (got === 0) break;
      const data = buffer.subarray(0, got);
      // A file read whole in one go is chunked in place: the splitter would copy what it
      // cannot decide yet, which for a small file is all of it.
      const chunks = size === 0 && atEnd ? chunkBuffer(cdc, data) : splitter.push(data);
      size += got;
      if (heldFresh.length > 0) await ask(task, { kind: 'store', blobs: heldFresh }, heldTransfer);
      // The chunks alias `buffer`: they are hashed and sealed before the next read.
      ({ fresh: heldFresh, transfer: heldTransfer } = await sealChunks(task, chunks, ids, buffer.buffer, request.sealUnasked));
      // Only the batch that is expected to be the last is held: a read error later must not
      // leave claimed blobs undelivered.
      if (!atEnd && heldFresh.length > 0) {
        await ask(task, { kind: 'store', blobs: heldFresh }, heldTransfer);
        heldFresh = [];
      }
    }
    const last = splitter.finish();
    if (last) {
      if (heldFresh.length > 0) await ask(task, { kind: 'store', blobs: heldFresh }, heldTransfer);
      ({ fresh: heldFresh, transfer: heldTransfer } = await sealChunks(task, [last], ids, buffer.buffer, request.sealUnasked));
    }
    const content = packIds(ids);
    return { result: { kind: 'chunk-file', content, size, blobs: heldFresh }, transfer: [...heldTransfer, content.buffer] };
  } finally {
    freeBuffers.push(buffer);
    closeSync(fd);
  }
}

/** Hashes chunks, asks which are ours to store (unless `unasked`), and seals those. */
async function sealChunks(
  task: number, chunks: readonly Buffer[], ids: Buffer[], readBuffer: ArrayBufferLike, unasked: boolean,
): Promise<{ fresh: StoredBlobMessage[]; transfer: ArrayBuffer[] }> {
  const fresh: StoredBlobMessage[] = [];
  const transfer: ArrayBuffer[] = [];
  if (chunks.length === 0) return { fresh, transfer };
  const chunkIds = chunks.map((chunk) => blobId(keys.idKey, chunk));
  ids.push(...chunkIds);
  let mine: readonly boolean[] | undefined;
  if (!unasked) {
    const packed = packIds(chunkIds);
    const bytes = chunks.reduce((sum, c) => sum + c.length, 0);
    const answer = await ask(task, { kind: 'claim', ids: packed, bytes }, [packed.buffer]);
    if (answer.kind !== 'claim') throw new Error('protocol error: expected a claim answer');
    mine = answer.mine;
  }
  for (let i = 0; i < chunks.length; i++) {
    if (mine !== undefined && mine[i] !== true) continue;
    const sealed = sealBlob(keys, chunkIds[i] as Buffer, chunks[i] as Buffer, setup.compressionLevel);
    // Claimed blobs go to this worker's pack; blobs sealed unasked go to the main thread, which
    // keeps the first copy of each.
    if (mine !== undefined) {
      await spoolBlob(task, sealed);
      continue;
    }
    fresh.push({ id: sealed.id, sealed: sealed.sealed, rawLength: sealed.rawLength });
    transfer.push(...transferable(sealed.sealed));
  }
  // A chunk that spanned two reads is a copy of its own (the rest are views of the read buffer,
  // which is reused): free it now rather than when this thread's collector gets to it.
  for (const chunk of chunks) if (chunk.buffer !== readBuffer) releaseBuffer(chunk);
  return { fresh, transfer };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isAllZero(buf: Uint8Array): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Files one write-blobs task holds open at once: each is closed after its last write in the
 * task, and past this many the oldest is closed early (a range of a pack can hold thousands of
 * small files). With the directory handles below, a worker's descriptors stay bounded.
 */
const OPEN_FILES_PER_TASK = 16;
/** Directory handles one task keeps (TargetDirs), from RLIMIT_NOFILE. */
const DIRS_PER_TASK = descriptorBudget(1 / 16, 32);

/** Decodes each blob once and writes it to every place it goes; an all-zero blob stays a hole. */
function writeBlobs(request: WriteBlobsTask): { result: TaskResult; transfer: ArrayBuffer[] } {
  const data = Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength);
  const dirs = new TargetDirs(request.rootFd, DIRS_PER_TASK);
  const failures: Array<WorkerFailure | undefined> = [];
  const fds = new Map<string, number>();
  const lastWrite = new Map<string, number>();
  request.writes.forEach((write, i) => { lastWrite.set(asBuffer(write.path).toString('latin1'), i); });
  const close = (key: string): void => {
    const fd = fds.get(key);
    fds.delete(key);
    if (fd !== undefined) closeSync(fd);
  };
  let bytes = 0;
  let current = -1;
  let decoded: { readonly plain: Buffer } | { readonly failure: WorkerFailure } = { failure: { message: 'no blob' } };
  try {
    for (const [i, write] of request.writes.entries()) {
      if (write.blob !== current) {
        current = write.blob;
        const blob = request.blobs[write.blob];
        try {
          if (!blob) throw new Error('protocol error: no such blob');
          decoded = { plain: decodeBlobTransient(keys, data.subarray(blob.offset, blob.offset + blob.length), Buffer.from(blob.id), blob.rawLength) };
        } catch (err) {
          decoded = { failure: { message: failureOf(err).message, code: BLOB_DAMAGED } };
        }
      }
      const path = asBuffer(write.path);
      const key = path.toString('latin1');
      if ('failure' in decoded) failures.push(decoded.failure);
      else {
        try {
          bytes += writeOne(dirs, fds, key, path, write, decoded.plain);
          failures.push(undefined);
        } catch (err) {
          failures.push(failureOf(err));
        }
      }
      if (lastWrite.get(key) === i) close(key);
      const oldest = fds.size > OPEN_FILES_PER_TASK ? fds.keys().next().value : undefined;
      if (oldest !== undefined) close(oldest);
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
    dirs.close();
    // This thread's collector never counted the range (the main thread allocated it): free it now.
    releaseBuffer(request.data);
  }
  return { result: { kind: 'write-blobs', failures, bytes }, transfer: [] };
}

/** One positioned write of a decoded blob; returns the bytes it stands for. */
function writeOne(dirs: TargetDirs, fds: Map<string, number>, key: string, path: Buffer, write: WriteBlobsTask['writes'][number], plain: Buffer): number {
  const zeros = isAllZero(plain);
  let fd = fds.get(key);
  if (write.create) {
    // A new file whose only blob this is: made here, a hole if the blob is all zeros.
    fd = retryWhenExhausted(() => openNewFile(dirs, path));
    fds.set(key, fd);
    if (zeros) ftruncateSync(fd, plain.length);
  }
  if (!zeros) {
    if (fd === undefined) {
      const opened = retryWhenExhausted(() => openSync(dirs.entry(path).at, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK));
      fds.set(key, opened);
      // The restore made it a regular file; anything else now stands there by another's hand.
      if (!fstatSync(opened).isFile()) throw new EntryChangedError('the restored file');
      fd = opened;
    }
    for (let done = 0; done < plain.length;) done += writeSync(fd, plain, done, plain.length - done, write.offset + done);
  }
  return plain.length;
}

/** Whether the regular file at `at` holds exactly the chunks `ids` of `lengths` (restore --overwrite if-changed). */
function holdsContent(at: Buffer, ids: Uint8Array, lengths: Uint32Array): boolean {
  const fd = retryWhenExhausted(() => openSync(at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK));
  const buffer = freeBuffers.pop() ?? Buffer.allocUnsafe(READ_SIZE);
  try {
    if (!fstatSync(fd).isFile()) return false;
    let at = 0;
    for (const [i, length] of lengths.entries()) {
      const chunk = length <= buffer.length ? buffer.subarray(0, length) : Buffer.allocUnsafe(length);
      for (let got = 0; got < length;) {
        const n = readSync(fd, chunk, got, length - got, at + got);
        if (n === 0) return false;
        got += n;
      }
      if (!blobId(keys.idKey, chunk).equals(ids.subarray(i * 32, i * 32 + 32))) return false;
      at += length;
    }
    return true;
  } finally {
    freeBuffers.push(buffer);
    closeSync(fd);
  }
}

/** Each item on its own: one failure (a planted device, a full disk) does not stop the rest. */
function fsBatch(request: FsBatchTask): { result: FsBatchResult; transfer: ArrayBuffer[] } {
  const dirs = new TargetDirs(request.rootFd, DIRS_PER_TASK);
  const failures: Array<WorkerFailure | undefined> = [];
  const outcomes: FsBatchResult['outcomes'][number][] = [];
  const attempt = (step: () => FsBatchResult['outcomes'][number]): void => {
    try {
      outcomes.push(retryWhenExhausted(step));
      failures.push(undefined);
    } catch (err) {
      outcomes.push(undefined);
      failures.push(failureOf(err));
    }
  };
  try {
    switch (request.kind) {
      case 'create-files':
        for (const { path, size } of request.files) attempt(() => { createFile(dirs, asBuffer(path), size); return undefined; });
        break;
      case 'make-dirs':
        for (const path of request.paths) attempt(() => ensureDirectory(dirs, asBuffer(path), request.rules));
        break;
      case 'apply-metadata':
        for (const meta of request.nodes) attempt(() => { applyMetadata(dirs, meta); return undefined; });
        break;
      case 'inspect':
        for (const node of request.nodes) {
          attempt(() => inspectExisting(dirs, asBuffer(node.path), node, request.rules, (at) => holdsContent(at, node.content, node.lengths)));
        }
        break;
    }
  } finally {
    dirs.close();
  }
  return { result: { kind: 'fs-batch', failures, outcomes }, transfer: [] };
}

function runTask(task: number, request: TaskRequest): Promise<{ result: TaskResult; transfer: ArrayBuffer[] }> {
  switch (request.kind) {
    case 'chunk-file': return chunkFile(task, request);
    case 'scan-dir': return scanDir(request, {
      readFile: async (file) => (await chunkFile(task, { kind: 'chunk-file', ...file, sealUnasked: true })).result,
      store: (blobs) => handOver(task, blobs),
      sealTree: (bytes) => sealBlob(keys, blobId(keys.idKey, bytes), bytes, setup.compressionLevel),
    });
    case 'write-blobs': return Promise.resolve().then(() => writeBlobs(request));
    case 'flush-spool': return flushSpool(task);
    case 'create-files':
    case 'make-dirs':
    case 'apply-metadata':
    case 'inspect': return Promise.resolve().then(() => fsBatch(request));
  }
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'answer') {
    const resolve = pendingAnswers.get(message.task);
    pendingAnswers.delete(message.task);
    resolve?.(message.answer);
    return;
  }
  const { task, request } = message;
  runTask(task, request).then(
    ({ result, transfer }) => {
      post({ type: 'done', task, result }, transfer);
    },
    (err: unknown) => {
      const e = err as NodeJS.ErrnoException;
      post({ type: 'failed', task, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
    },
  );
});
