import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { ArcaError } from '../../repository/errors.ts';
import type { RepoConfig } from '../../repository/config.ts';
import type { BlobKeys } from '../../repository/crypto/master-key.ts';
import {
  transferable, type ChunkFileResult, type ChunkFileTask, type FromWorker, type FsBatchResult, type FsBatchTask, type ScanDirResult, type ScanDirTask, type TaskAnswer,
  type TaskQuestion, type TaskRequest, type TaskResult, type ToWorker, type WorkerFailure, type WorkerSetup, type WriteBlobsResult, type WriteBlobsTask,
} from './messages.ts';

/** A task that failed inside a worker; `errno` is set for file-system errors (EACCES, ENOENT...). */
export class WorkerTaskError extends ArcaError {
  readonly errno: string | undefined;

  constructor(failure: WorkerFailure) {
    super('ARCA_ERR_WORKER_TASK', failure.message);
    this.errno = failure.code;
  }
}

/** Answers a running task's questions (claim these IDs? store these blobs). */
export type QuestionHandler = (question: TaskQuestion) => Promise<TaskAnswer> | TaskAnswer;

interface Running {
  readonly worker: Slot;
  readonly resolve: (result: TaskResult) => void;
  readonly reject: (err: Error) => void;
  readonly onQuestion: QuestionHandler | undefined;
}

interface Slot {
  readonly worker: Worker;
  busy: number;
}

interface Queued {
  readonly request: TaskRequest;
  readonly transfer: ArrayBuffer[];
  readonly onQuestion: QuestionHandler | undefined;
  readonly resolve: (result: TaskResult) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Each worker runs this many tasks at once, so one computes while another waits for an answer.
 * Two, not four: since workers write their own packs, a task rarely waits, and each task in
 * flight holds a 2 MiB read buffer and a chunk or two (backup 20–30 MiB less peak RSS, no slower).
 */
const TASKS_PER_WORKER = 2;

/**
 * The bytes of `view` in memory of their own. A message clones the whole ArrayBuffer behind a
 * view: a path made by Buffer.concat lies in Buffer's 64 KiB pool, and sent as it is, it cost
 * ten times the time of a copy and 64 KiB of memory on the other side, for every file.
 */
function exact(view: Uint8Array): Uint8Array {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view : new Uint8Array(view);
}

function workerScript(): URL {
  // Under Node's type stripping (tests, `node cli/main.ts`) this module is .ts; once built, .js.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./worker.${ext}`, import.meta.url);
}

/**
 * A fixed set of worker threads. Tasks beyond what the workers are running wait in a queue;
 * callers bound how many they submit (the archiver and restorer use a Semaphore).
 */
export class WorkerPool {
  readonly size: number;
  private readonly setup: WorkerSetup;
  private slots: Slot[] | undefined;
  private readonly running = new Map<number, Running>();
  private readonly queue: Queued[] = [];
  private nextTask = 1;
  private fatal: Error | undefined;

  /** Whether the workers write the blobs they seal to packs of their own (WorkerSetup.spool). */
  get spooling(): boolean {
    return this.setup.spool !== undefined;
  }

  constructor(setup: WorkerSetup, size = os.availableParallelism()) {
    this.size = Math.max(1, size);
    this.setup = setup;
  }

  /**
   * Workers start on the first task: a backup in which nothing changed never pays for them
   * (each costs tens of milliseconds of CPU and megabytes of memory to start).
   */
  private startWorkers(): Slot[] {
    this.slots ??= Array.from({ length: this.size }, () => {
      const slot: Slot = { worker: new Worker(workerScript(), { workerData: this.setup }), busy: 0 };
      slot.worker.on('message', (message: FromWorker) => { this.onMessage(message); });
      slot.worker.on('error', (err: Error) => { this.failAll(err); });
      slot.worker.on('exit', (code) => {
        if (code !== 0) this.failAll(new ArcaError('ARCA_ERR_WORKER_EXIT', `A worker thread exited with code ${code}.`));
      });
      return slot;
    });
    return this.slots;
  }

  /** Chunks a file opened through its directory's handle (see ChunkFileTask). */
  chunkFile(request: Omit<ChunkFileTask, 'kind'>, onQuestion: QuestionHandler): Promise<ChunkFileResult> {
    return this.run({ kind: 'chunk-file', ...request, path: exact(request.path) }, [], onQuestion) as Promise<ChunkFileResult>;
  }

  /** Lists a directory for a backup in a worker (see ScanDirTask); its small files' blobs come as `store` questions and with the result. */
  scanDir(request: Omit<ScanDirTask, 'kind'>, onQuestion: QuestionHandler): Promise<ScanDirResult> {
    return this.run({ kind: 'scan-dir', ...request, path: exact(request.path) }, [], onQuestion) as Promise<ScanDirResult>;
  }

  /** Decodes blobs of one pack range and writes them into files below the target `rootFd`; `data` is moved to the worker. */
  writeBlobs(rootFd: number, data: Buffer, blobs: WriteBlobsTask['blobs'], writes: WriteBlobsTask['writes']): Promise<WriteBlobsResult> {
    return this.run({
      kind: 'write-blobs', rootFd, data,
      blobs: blobs.map((blob) => ({ ...blob, id: exact(blob.id) })),
      writes: writes.map((write) => ({ ...write, path: exact(write.path) })),
    }, transferable(data), undefined) as Promise<WriteBlobsResult>;
  }

  /** Runs a batch of restore file-system steps (making directories and files, applying metadata, inspecting what exists) in a worker. */
  fsBatch(request: FsBatchTask): Promise<FsBatchResult> {
    switch (request.kind) {
      case 'create-files': return this.runFsBatch({ ...request, files: request.files.map((file) => ({ ...file, path: exact(file.path) })) });
      case 'make-dirs': return this.runFsBatch({ ...request, paths: request.paths.map(exact) });
      case 'apply-metadata': return this.runFsBatch({ ...request, nodes: request.nodes.map((node) => ({ ...node, path: exact(node.path) })) });
      case 'inspect': return this.runFsBatch({ ...request, nodes: request.nodes.map((node) => ({ ...node, path: exact(node.path) })) });
    }
  }

  private runFsBatch(request: FsBatchTask): Promise<FsBatchResult> {
    return this.run(request, [], undefined) as Promise<FsBatchResult>;
  }

  /**
   * Has every started worker finish its spooled pack (each may ask a `pack` question), at the
   * end of a backup. Workers that never started have none.
   */
  async flushSpools(onQuestion: QuestionHandler): Promise<void> {
    await Promise.all((this.slots ?? []).map((slot) => new Promise<TaskResult>((resolve, reject) => {
      if (this.fatal) {
        reject(this.fatal);
        return;
      }
      // Straight to this worker, past the queue and its limit: the flush must reach every one.
      const task = this.nextTask++;
      slot.busy++;
      this.running.set(task, { worker: slot, resolve, reject, onQuestion });
      const message: ToWorker = { type: 'task', task, request: { kind: 'flush-spool' } };
      slot.worker.postMessage(message);
    })));
  }

  async close(): Promise<void> {
    await Promise.all((this.slots ?? []).map((slot) => slot.worker.terminate()));
  }

  /**
   * Cancels the pool: every task running or queued fails with `reason` at once, no new task
   * starts, and the workers are terminated (a task may hold a file open or be mid-read; nothing
   * it leaves is visible in the repository: a spooled pack is a temporary file).
   */
  abort(reason: Error): void {
    this.failAll(reason);
    void this.close();
  }

  private run(request: TaskRequest, transfer: ArrayBuffer[], onQuestion: QuestionHandler | undefined): Promise<TaskResult> {
    return new Promise((resolve, reject) => {
      if (this.fatal) {
        reject(this.fatal);
        return;
      }
      this.queue.push({ request, transfer, onQuestion, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    const slots = this.startWorkers();
    while (this.queue.length > 0) {
      const slot = slots.reduce((best, s) => (s.busy < best.busy ? s : best));
      if (slot.busy >= TASKS_PER_WORKER) return;
      const job = this.queue.shift() as Queued;
      const task = this.nextTask++;
      slot.busy++;
      this.running.set(task, { worker: slot, resolve: job.resolve, reject: job.reject, onQuestion: job.onQuestion });
      const message: ToWorker = { type: 'task', task, request: job.request };
      slot.worker.postMessage(message, job.transfer);
    }
  }

  private onMessage(message: FromWorker): void {
    const running = this.running.get(message.task);
    if (!running) return;
    if (message.type === 'question') {
      const handler = running.onQuestion;
      if (!handler) {
        this.finish(message.task, running);
        running.reject(new ArcaError('ARCA_ERR_WORKER_PROTOCOL', 'A worker asked a question of a task that takes none.'));
        return;
      }
      Promise.resolve()
        .then(() => handler(message.question))
        .then((answer) => {
          const reply: ToWorker = { type: 'answer', task: message.task, answer };
          running.worker.worker.postMessage(reply);
        })
        .catch((err: unknown) => {
          // The task cannot go on without an answer: end it here; the worker's side is dropped.
          this.finish(message.task, running);
          running.reject(err instanceof Error ? err : new Error(String(err)));
        });
      return;
    }
    this.finish(message.task, running);
    if (message.type === 'done') running.resolve(message.result);
    else running.reject(new WorkerTaskError(message.error));
  }

  private finish(task: number, running: Running): void {
    this.running.delete(task);
    running.worker.busy--;
    this.dispatch();
  }

  private failAll(err: Error): void {
    this.fatal ??= err;
    for (const [task, running] of this.running) {
      this.running.delete(task);
      running.reject(err);
    }
    for (const job of this.queue.splice(0)) job.reject(err);
  }
}


/**
 * The worker setup for a repository's keys and format parameters; for a backup, where the
 * workers spool packs and the compression level if not the repository's.
 */
export function workerSetupFor(keys: BlobKeys, config: RepoConfig, backup: { spoolDir?: string | undefined; compressionLevel?: number | undefined } = {}): WorkerSetup {
  return {
    encKey: keys.encKey, idKey: keys.idKey, chunkerKey: Buffer.from(config.chunkerKey, 'hex'), chunker: config.chunker,
    compressionLevel: backup.compressionLevel ?? config.compression.level,
    spool: backup.spoolDir === undefined ? undefined : { dir: backup.spoolDir, packSize: config.packSize },
  };
}
