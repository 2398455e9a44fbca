import {
  BlobServiceClient, StorageSharedKeyCredential, type ContainerClient, type StoragePipelineOptions,
} from '@azure/storage-blob';
import { UsageError } from '../errors.ts';
import {
  compactCause, contentLength, DEFAULT_TIMEOUTS, forEachLimited, isTransientNetworkError, isTransientStatus, joinParts, normalizePrefix,
  alreadyTyped, attemptOnce, readBody, splitParts, type RequestTimeouts,
} from './remote.ts';
import {
  assertObjectName, contentParts, ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError,
  type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage,
} from './storage.ts';

const MiB = 1024 * 1024;
/** A block blob holds at most this many committed blocks. */
const MAX_BLOCKS = 50_000;

/** `endpoint` replaces the account's https://ACCOUNT.blob.core.windows.net (e.g. Azurite's http://127.0.0.1:10000/ACCOUNT). */
export type AzureCredential =
  | { readonly kind: 'connection-string'; readonly connectionString: string }
  | { readonly kind: 'shared-key'; readonly account: string; readonly key: string; readonly endpoint?: string | undefined }
  | { readonly kind: 'sas'; readonly account: string; readonly sasToken: string; readonly endpoint?: string | undefined };

/** An account's credential with its endpoint settled, as the client needs it. */
type ResolvedCredential = Exclude<AzureCredential, { kind: 'connection-string' }> & { readonly endpoint: string } | Extract<AzureCredential, { kind: 'connection-string' }>;

/** Everything an AzureBlobStorage needs; `azureConfigFromUrl` builds it from a URL and AzureOptions. */
export interface AzureConfig {
  readonly container: string;
  /** Blob name prefix of the repository: "" or "a/b/" (always with a trailing slash). */
  readonly prefix: string;
  readonly credential: ResolvedCredential;
  readonly timeouts?: RequestTimeouts;
  /** Objects larger than this are staged in blocks and committed (default 64 MiB). */
  readonly singleShotLimit?: number;
  /** Block size of staged uploads (default 16 MiB; grows so that at most 50,000 blocks are needed). */
  readonly blockSize?: number;
  /** Blocks staged at once for one blob (default 4). */
  readonly blockConcurrency?: number;
  /** Blobs per list request (default 5,000, the service maximum). */
  readonly listPageSize?: number;
  /** Where the credentials came from, named in messages when they are refused (the entry point knows). */
  readonly credentialsHint?: string | undefined;
}

/** How to reach an azure:// repository, from whatever the entry point reads (flags, environment, a Secret). */
export interface AzureOptions {
  readonly credential?: AzureCredential | undefined;
  readonly timeouts?: RequestTimeouts | undefined;
  readonly credentialsHint?: string | undefined;
}

const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/** "azure://container/prefix" with the given credential (required). */
export function azureConfigFromUrl(url: string, options: AzureOptions = {}): AzureConfig {
  const match = /^azure:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(url);
  const container = match?.[1] ?? '';
  if (!CONTAINER.test(container)) {
    throw new UsageError(`"${url}" is not a valid repository URL; use azure://CONTAINER/PREFIX with a container name of 3 to 63 lowercase letters, digits and single hyphens.`);
  }
  const prefix = normalizePrefix(match?.[2] ?? '');
  const credential = options.credential;
  if (credential === undefined) throw new UsageError(`The azure:// repository ${url} needs credentials: a connection string, or an account with a key or a SAS token.`);
  let normalized: ResolvedCredential;
  if (credential.kind === 'connection-string') normalized = credential;
  else {
    const endpoint = credential.endpoint ?? `https://${credential.account}.blob.core.windows.net`;
    if (!/^https?:\/\/[^/]+/i.test(endpoint)) throw new UsageError(`The Azure endpoint "${endpoint}" must be an http:// or https:// URL.`);
    normalized = credential.kind === 'shared-key' ? { ...credential, endpoint: endpoint.replace(/\/+$/, '') }
      : { ...credential, endpoint: endpoint.replace(/\/+$/, ''), sasToken: credential.sasToken.replace(/^\?/, '') };
  }
  return { container, prefix, timeouts: options.timeouts ?? DEFAULT_TIMEOUTS, credential: normalized, credentialsHint: options.credentialsHint };
}

function serviceClient(credential: ResolvedCredential): BlobServiceClient {
  // One attempt per call: retries belong to the retrying wrapper, which sees StorageError.transient.
  const options: StoragePipelineOptions = { retryOptions: { maxTries: 1 }, keepAliveOptions: { enable: true } };
  switch (credential.kind) {
    case 'connection-string':
      try {
        return BlobServiceClient.fromConnectionString(credential.connectionString, options);
      } catch (err) {
        throw new UsageError(`The Azure connection string is not valid (${err instanceof Error ? err.message : String(err)}).`);
      }
    case 'shared-key':
      return new BlobServiceClient(credential.endpoint, new StorageSharedKeyCredential(credential.account, credential.key), options);
    case 'sas':
      return new BlobServiceClient(`${credential.endpoint}?${credential.sasToken}`, undefined, options);
  }
}

const AUTH_CODES = new Set([
  'AuthenticationFailed', 'AuthorizationFailure', 'AuthorizationPermissionMismatch', 'AuthorizationSourceIPMismatch',
  'AuthorizationProtocolMismatch', 'AuthorizationResourceTypeMismatch', 'AuthorizationServiceMismatch',
  'InvalidAuthenticationInfo', 'NoAuthenticationInformation', 'KeyBasedAuthenticationNotPermitted', 'InsufficientAccountPermissions',
]);
const TRANSIENT_CODES = new Set(['ServerBusy', 'OperationTimedOut', 'InternalError', 'ServiceUnavailable']);
const TRANSIENT_SEND_ERROR = /ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|socket hang up|aborted/i;

/**
 * Objects as block blobs in an Azure Storage container (or Azurite). Each call is one attempt
 * (the SDK's own retries are off) with a time limit; failures come back as typed errors, and
 * StorageError.transient tells a retrying wrapper which are worth another try.
 */
export class AzureBlobStorage implements Storage {
  readonly location: string;
  private readonly container: ContainerClient;
  private readonly containerName: string;
  private readonly prefix: string;
  private readonly timeouts: RequestTimeouts;
  private readonly singleShotLimit: number;
  private readonly blockSize: number;
  private readonly blockConcurrency: number;
  private readonly listPageSize: number;
  private readonly credentialHint: string;

  constructor(config: AzureConfig) {
    this.credentialHint = config.credentialsHint ?? 'the connection string, account key or SAS token';
    this.containerName = config.container;
    this.prefix = config.prefix;
    this.location = `azure://${config.container}${config.prefix === '' ? '' : `/${config.prefix.slice(0, -1)}`}`;
    this.timeouts = config.timeouts ?? DEFAULT_TIMEOUTS;
    this.singleShotLimit = config.singleShotLimit ?? 64 * MiB;
    this.blockSize = config.blockSize ?? 16 * MiB;
    this.blockConcurrency = config.blockConcurrency ?? 4;
    this.listPageSize = Math.min(config.listPageSize ?? 5000, 5000);
    this.container = serviceClient(config.credential).getContainerClient(config.container);
  }

  private blobOf(name: string): string {
    assertObjectName(name);
    return this.prefix + name;
  }

  async put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    const cancel = options?.signal;
    const blob = this.container.getBlockBlobClient(this.blobOf(name));
    const parts = contentParts(data);
    const size = contentLength(parts);
    const blobHTTPHeaders = { blobContentType: 'application/octet-stream' };
    const action = `write ${name}`;
    if (size <= this.singleShotLimit) {
      const body = joinParts(parts);
      await this.call(action, name, this.timeouts.dataMs, cancel, (abortSignal) => blob.upload(body, body.length, { abortSignal, blobHTTPHeaders }));
      return;
    }
    // Staged blocks stay invisible until the commit, which makes the blob appear whole at once;
    // blocks of a failed upload are never committed and the service discards them after a week.
    const pieces = splitParts(parts, Math.max(this.blockSize, Math.ceil(size / MAX_BLOCKS)));
    const ids = pieces.map((_, i) => Buffer.from(`arca-block-${String(i).padStart(6, '0')}`).toString('base64'));
    await forEachLimited(pieces, this.blockConcurrency, async (piece, index) => {
      const body = joinParts(piece);
      await this.call(`${action} (block ${index + 1} of ${pieces.length})`, name, this.timeouts.dataMs, cancel,
        (abortSignal) => blob.stageBlock(ids[index] ?? '', body, body.length, { abortSignal }));
    });
    await this.call(action, name, this.timeouts.dataMs, cancel, (abortSignal) => blob.commitBlockList(ids, { abortSignal, blobHTTPHeaders }));
  }

  async get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    const blob = this.container.getBlobClient(this.blobOf(name));
    if (range?.length === 0) {
      const { size } = await this.stat(name, options);
      if (range.offset > size) throw new ShortReadError(this.location, name, range, 0);
      return Buffer.alloc(0);
    }
    const bytes = await this.call(`read ${name}`, name, this.timeouts.dataMs, options?.signal, async (abortSignal) => {
      const out = await blob.download(range?.offset ?? 0, range?.length, { abortSignal, maxRetryRequests: 0 });
      return out.readableStreamBody === undefined ? Buffer.alloc(0) : readBody(out.readableStreamBody, abortSignal);
    }, range);
    if (range !== undefined && bytes.length < range.length) throw new ShortReadError(this.location, name, range, bytes.length);
    return range !== undefined && bytes.length > range.length ? bytes.subarray(0, range.length) : bytes;
  }

  async stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    const blob = this.container.getBlobClient(this.blobOf(name));
    const props = await this.call(`stat ${name}`, name, this.timeouts.metadataMs, options?.signal, (abortSignal) => blob.getProperties({ abortSignal }));
    return { name, size: props.contentLength ?? 0, modified: props.lastModified?.getTime() };
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const continuationToken = token;
      const page = await this.call(`list ${prefix === '' ? '/' : prefix}`, undefined, this.timeouts.metadataMs, options?.signal, async (abortSignal) => {
        const pages = this.container.listBlobsFlat({ prefix: this.prefix + prefix, abortSignal })
          .byPage({ maxPageSize: this.listPageSize, continuationToken });
        const next = await pages.next();
        return next.done === true ? undefined : next.value;
      });
      if (page === undefined) return;
      for (const item of page.segment.blobItems) {
        if (!item.name.startsWith(this.prefix) || item.name.endsWith('/')) continue;
        yield { name: item.name.slice(this.prefix.length), size: item.properties.contentLength ?? 0, modified: item.properties.lastModified.getTime() };
      }
      token = page.continuationToken === '' ? undefined : page.continuationToken;
    } while (token !== undefined);
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    const blob = this.container.getBlobClient(this.blobOf(name));
    await this.call(`delete ${name}`, name, this.timeouts.metadataMs, options?.signal, (abortSignal) => blob.deleteIfExists({ abortSignal, deleteSnapshots: 'include' }));
  }

  /** One attempt of one request with a time limit, until `cancel` fires; failures come back typed. */
  private call<T>(action: string, name: string | undefined, ms: number, cancel: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>, range?: ByteRange): Promise<T> {
    return attemptOnce(ms, run, (err) => this.mapError(err, action, name, range), cancel);
  }

  private mapError(err: unknown, action: string, name: string | undefined, range: ByteRange | undefined): Error {
    const settled = alreadyTyped(err, this.location, action);
    if (settled) return settled;
    // Shaped like the SDK's RestError (checked by shape: several copies of its package may be installed).
    const shape = (typeof err === 'object' && err !== null ? err : {}) as { readonly statusCode?: number; readonly code?: string };
    const status = shape.statusCode;
    const code = shape.code ?? '';
    if (code === 'ContainerNotFound') {
      return new StorageError(this.location, `${action} (container "${this.containerName}" does not exist; create it first)`);
    }
    if (range !== undefined && name !== undefined && (status === 416 || code === 'InvalidRange')) return new ShortReadError(this.location, name, range, 0);
    if (name !== undefined && (status === 404 || code === 'BlobNotFound')) return new ObjectNotFoundError(this.location, name);
    if (TRANSIENT_CODES.has(code) || isTransientStatus(status)) return new StorageError(this.location, action, { cause: compactCause(err), transient: true });
    if (status === 401 || status === 403 || AUTH_CODES.has(code)) {
      return new StorageAuthError(this.location, code === '' ? `HTTP ${status ?? '?'}` : code,
        this.credentialHint, { cause: compactCause(err) });
    }
    const transient = isTransientNetworkError(err)
      || (code === 'REQUEST_SEND_ERROR' && err instanceof Error && TRANSIENT_SEND_ERROR.test(err.message));
    return new StorageError(this.location, action, { cause: compactCause(err), transient });
  }
}
