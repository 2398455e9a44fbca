import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ChunkSplitter, FastCdc } from '../../chunker/index.ts';
import { blobId, type MasterKey } from '../../repository/crypto/master-key.ts';
import { decodeBlob, sealBlob } from '../../repository/blob/blob-codec.ts';
import type {
  ChunkFileTask, DecodeBlobsTask, FromWorker, TaskAnswer, TaskQuestion, TaskResult, ToWorker, WorkerSetup,
} from './messages.ts';

/** The CPU side of backup and restore: chunking, hashing, compression, encryption, decoding. */
const setup = workerData as WorkerSetup;
const port = parentPort;
if (!port) throw new Error('worker.ts must run as a worker thread');

const keys: MasterKey = {
  secret: Buffer.alloc(0),
  encKey: Buffer.from(setup.encKey),
  idKey: Buffer.from(setup.idKey),
  chunkerKey: Buffer.from(setup.chunkerKey),
};
const cdc = new FastCdc(keys.chunkerKey, setup.chunker);
const READ_SIZE = 8 << 20;
const ID_LENGTH = 32;

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

/** A buffer's memory can move to the other thread only when the buffer owns all of it. */
function transferable(buf: Buffer): ArrayBuffer[] {
  return buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer ? [buf.buffer] : [];
}

async function chunkFile(task: number, request: ChunkFileTask): Promise<TaskResult> {
  const fd = openSync(Buffer.from(request.path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error('no longer a regular file'), { code: 'ARCA_ERR_FILE_CHANGED' });
    const splitter = new ChunkSplitter(cdc);
    const ids: Buffer[] = [];
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    let size = 0;
    for (;;) {
      const got = readSync(fd, buffer, 0, READ_SIZE, null);
      if (got === 0) break;
      size += got;
      // The chunks alias `buffer`: they are hashed and sealed before the next read.
      await storeChunks(task, splitter.push(buffer.subarray(0, got)), ids);
    }
    const last = splitter.finish();
    if (last) await storeChunks(task, [last], ids);
    const content = Buffer.allocUnsafe(ids.length * ID_LENGTH);
    ids.forEach((id, i) => id.copy(content, i * ID_LENGTH));
    return { kind: 'chunk-file', content, size };
  } finally {
    closeSync(fd);
  }
}

async function storeChunks(task: number, chunks: readonly Buffer[], ids: Buffer[]): Promise<void> {
  if (chunks.length === 0) return;
  const chunkIds = chunks.map((chunk) => blobId(keys.idKey, chunk));
  ids.push(...chunkIds);
  const answer = await ask(task, { kind: 'claim', ids: Buffer.concat(chunkIds) });
  if (answer.kind !== 'claim') throw new Error('protocol error: expected a claim answer');
  const blobs = [];
  const transfer: ArrayBuffer[] = [];
  for (let i = 0; i < chunks.length; i++) {
    if (answer.mine[i] !== true) continue;
    const sealed = sealBlob(keys, chunkIds[i] as Buffer, chunks[i] as Buffer, setup.compressionLevel);
    blobs.push({ id: sealed.id, sealed: sealed.sealed, rawLength: sealed.rawLength });
    transfer.push(...transferable(sealed.sealed));
  }
  if (blobs.length > 0) await ask(task, { kind: 'store', blobs }, transfer);
}

function decodeBlobs(request: DecodeBlobsTask): TaskResult {
  const data = Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength);
  const plaintexts = request.blobs.map((blob) =>
    decodeBlob(keys, data.subarray(blob.offset, blob.offset + blob.length), Buffer.from(blob.id)));
  return { kind: 'decode-blobs', plaintexts };
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'answer') {
    const resolve = pendingAnswers.get(message.task);
    pendingAnswers.delete(message.task);
    resolve?.(message.answer);
    return;
  }
  const { task, request } = message;
  const run = request.kind === 'chunk-file' ? chunkFile(task, request) : Promise.resolve().then(() => decodeBlobs(request));
  run.then(
    (result) => {
      const transfer = result.kind === 'decode-blobs' ? result.plaintexts.flatMap((p) => transferable(Buffer.from(p.buffer, p.byteOffset, p.byteLength))) : [];
      post({ type: 'done', task, result }, transfer);
    },
    (err: unknown) => {
      const e = err as NodeJS.ErrnoException;
      post({ type: 'failed', task, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
    },
  );
});
