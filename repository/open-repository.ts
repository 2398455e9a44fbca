import path from 'node:path';
import { CachingStorage } from './cache/caching-storage.ts';
import { RepositoryCache } from './cache/repository-cache.ts';
import type { KdfSettings } from './crypto/kdf.ts';
import { UsageError } from './errors.ts';
import { silentLogger, type Logger } from './logger.ts';
import { Repository, type InitOptions } from './repository.ts';
import { CancelableStorage } from './storage/cancelable.ts';
import { LocalStorage } from './storage/local.ts';
import { openStorage, type BackendOptions } from './storage/open.ts';
import { DEFAULT_TIMEOUTS } from './storage/remote.ts';
import { retryPolicyFor, RetryingStorage, type RetryEvent, type RetryPolicy } from './storage/retrying.ts';
import type { Storage } from './storage/storage.ts';

/**
 * Everything needed to open one repository, as plain values: the CLI makes it from flags and the
 * environment, the agent from a BackupRepository and its Secrets. Nothing below reads the
 * environment, so one process can open many repositories with different credentials.
 */
export interface RepositoryOptions {
  /** "/path", "file:///path", "s3://bucket/prefix", "gs://bucket/prefix" or "azure://container/prefix". */
  readonly url: string;
  readonly password: Buffer | string;
  /** Endpoint, credentials, region, time limits of the backend. */
  readonly backend?: BackendOptions | undefined;
  /** The directory holding the local caches (one per repository ID); undefined: no cache. */
  readonly cacheDir?: string | undefined;
  /** How hard remote storage calls are retried (default: retryPolicyFor the backend's time limits). */
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** Told before every retry (the logger gets a warning either way). */
  readonly onRetry?: ((event: RetryEvent) => void) | undefined;
  /** Where warnings go (retries, a cache that cannot be used), with the repository's location. */
  readonly logger?: Logger | undefined;
  /** Cancels the opening itself (reading the config and the keys); the repository outlives it. */
  readonly signal?: AbortSignal | undefined;
}

/** What `initRepository` adds: the new repository's format parameters and how its first key is derived. */
export interface InitRepositoryOptions extends RepositoryOptions {
  readonly config?: InitOptions | undefined;
  readonly kdf?: KdfSettings | undefined;
}

function passwordBytes(password: Buffer | string): Buffer {
  const bytes = typeof password === 'string' ? Buffer.from(password) : password;
  if (bytes.length === 0) throw new UsageError('The repository password is empty.');
  return bytes;
}

/**
 * The backend, wrapped in retries. A local directory gets none: reading a damaged file again
 * cannot help, and retrying would only delay the error and log warnings.
 */
async function backendOf(options: RepositoryOptions): Promise<{ backend: Storage; wrap: (storage: Storage) => Storage }> {
  const backend = await openStorage(options.url, options.backend);
  const logger = options.logger ?? silentLogger;
  const policy = { ...retryPolicyFor(options.backend?.timeouts ?? DEFAULT_TIMEOUTS), ...options.retry };
  const wrap = (storage: Storage): Storage => (backend instanceof LocalStorage ? storage : new RetryingStorage(storage, { ...policy, logger, onRetry: options.onRetry }));
  return { backend, wrap };
}

/**
 * Opens a repository through retrying(caching(backend)); the cache is keyed by the repository
 * ID, so it is opened once the config is read. close() the repository to release the cache.
 */
export async function openRepository(options: RepositoryOptions): Promise<Repository> {
  const { backend, wrap } = await backendOf(options);
  const plainStorage = wrap(backend);
  const opening = options.signal === undefined ? plainStorage : new CancelableStorage(plainStorage, options.signal);
  const plain = (await Repository.open(opening, passwordBytes(options.password))).withStorage(plainStorage);
  if (options.cacheDir === undefined) return plain;
  const cache = await RepositoryCache.open({ root: path.resolve(options.cacheDir), repoId: plain.config.id, logger: options.logger });
  if (cache === undefined) return plain;
  return plain.withStorage(wrap(new CachingStorage(backend, cache.objects)), { blobCache: cache.trees, close: () => cache.close() });
}

/** Creates a repository (refusing to overwrite one) and returns it open, without a cache. */
export async function initRepository(options: InitRepositoryOptions): Promise<Repository> {
  const { backend, wrap } = await backendOf(options);
  return Repository.init(wrap(backend), passwordBytes(options.password), options.config, options.kdf);
}
