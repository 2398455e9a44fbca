import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand,
  type CompletedPart, type StorageClass,
} from '@aws-sdk/client-s3';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { UsageError } from '../errors.ts';
import {
  compactCause, contentLength, DEFAULT_TIMEOUTS, forEachLimited, isTransientNetworkError, isTransientStatus, joinParts,
  normalizePrefix, alreadyTyped, attemptOnce, readBody, splitParts, type RequestTimeouts,
} from './remote.ts';
import {
  assertObjectName, contentParts, ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError,
  type ByteRange, type CallOptions, type ObjectContent, type ObjectInfo, type Storage,
} from './storage.ts';

const MiB = 1024 * 1024;
/** S3 allows at most this many parts in one multipart upload. */
const MAX_PARTS = 10_000;

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Everything an S3Storage needs; `s3ConfigFromUrl` and `gcsConfigFromUrl` build it from a URL. */
export interface S3Config {
  /** "s3" or "gs": only changes the location shown in messages and the credential hint. */
  readonly scheme: 's3' | 'gs';
  readonly bucket: string;
  /** Key prefix of the repository: "" or "a/b/" (always with a trailing slash). */
  readonly prefix: string;
  /** An S3-compatible server's URL; undefined for AWS itself. */
  readonly endpoint?: string | undefined;
  readonly forcePathStyle: boolean;
  /** undefined: the SDK's region chain (AWS_REGION, the profile). */
  readonly region?: string | undefined;
  /** undefined: the SDK's default credential chain (environment, profile, SSO, web identity, instance role). */
  readonly credentials?: S3Credentials | undefined;
  /** Storage class for `data/` objects (packs); other objects are read often and stay STANDARD. */
  readonly storageClass?: string | undefined;
  /**
   * Send the newer flexible checksums (CRC32) only when an operation requires them. S3-compatible
   * servers (and GCS) often reject or mangle them; AWS itself gets them.
   */
  readonly checksumsWhenRequired: boolean;
  readonly timeouts?: RequestTimeouts;
  /** Objects larger than this go up in a multipart upload (default 64 MiB). */
  readonly multipartThreshold?: number;
  /** Part size of multipart uploads (default 16 MiB; grows so that at most 10,000 parts are needed). */
  readonly partSize?: number;
  /** Parts uploaded at once in one multipart upload (default 4). */
  readonly partConcurrency?: number;
  /** Keys per list request (at most 1,000, the S3 maximum and default). */
  readonly listPageSize?: number;
  /** Connections kept per client (default 32). */
  readonly maxSockets?: number;
  /** Where the credentials came from, named in messages when they are refused (the entry point knows). */
  readonly credentialsHint?: string | undefined;
}

/** How to reach an s3:// (or gs://) repository, from whatever the entry point reads (flags, environment, a Secret). */
export interface S3Options {
  /** An S3-compatible server's http(s) URL; undefined for AWS itself (or GCS for gs://). */
  readonly endpoint?: string | undefined;
  /** undefined: us-east-1 with an endpoint, else the AWS SDK's region chain. */
  readonly region?: string | undefined;
  /** undefined: the AWS SDK's default credential chain (s3:// only; gs:// needs an HMAC key here). */
  readonly credentials?: S3Credentials | undefined;
  /** Path-style addressing; default: on with an endpoint. */
  readonly pathStyle?: boolean | undefined;
  /** Storage class for packs. */
  readonly storageClass?: string | undefined;
  readonly timeouts?: RequestTimeouts | undefined;
  readonly credentialsHint?: string | undefined;
}

const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

function splitBucketUrl(url: string, scheme: string): { bucket: string; prefix: string } {
  const match = new RegExp(`^${scheme}://([^/?#]*)(/[^?#]*)?$`).exec(url);
  const bucket = match?.[1] ?? '';
  if (!BUCKET.test(bucket)) {
    throw new UsageError(`"${url}" is not a valid repository URL; use ${scheme}://BUCKET/PREFIX with a bucket name of 3 to 222 lowercase letters, digits, dots, hyphens or underscores.`);
  }
  return { bucket, prefix: normalizePrefix(match?.[2] ?? '') };
}

function checkEndpoint(endpoint: string): string {
  if (!/^https?:\/\/[^/]+/i.test(endpoint)) throw new UsageError(`The S3 endpoint "${endpoint}" must be an http:// or https:// URL.`);
  return endpoint.replace(/\/+$/, '');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** "s3://bucket/prefix" with the given endpoint, region and credentials (each defaulting as S3Options says). */
export function s3ConfigFromUrl(url: string, options: S3Options = {}): S3Config {
  const { bucket, prefix } = splitBucketUrl(url, 's3');
  const rawEndpoint = nonEmpty(options.endpoint);
  const endpoint = rawEndpoint === undefined ? undefined : checkEndpoint(rawEndpoint);
  return {
    scheme: 's3',
    bucket,
    prefix,
    endpoint,
    forcePathStyle: options.pathStyle ?? endpoint !== undefined,
    region: nonEmpty(options.region) ?? (endpoint === undefined ? undefined : 'us-east-1'),
    credentials: options.credentials,
    storageClass: nonEmpty(options.storageClass),
    checksumsWhenRequired: endpoint !== undefined,
    timeouts: options.timeouts ?? DEFAULT_TIMEOUTS,
    credentialsHint: options.credentialsHint,
  };
}

/** The endpoint of Google Cloud Storage's S3 interoperability (XML) API. */
export const GCS_ENDPOINT = 'https://storage.googleapis.com';

/** "gs://bucket/prefix" through GCS's S3 interoperability API with an HMAC key (`credentials`, required). */
export function gcsConfigFromUrl(url: string, options: S3Options = {}): S3Config {
  const { bucket, prefix } = splitBucketUrl(url, 'gs');
  const credentials = options.credentials;
  if (credentials === undefined || credentials.accessKeyId === '' || credentials.secretAccessKey === '') {
    throw new UsageError(`The gs:// repository ${url} needs an HMAC key (an access key ID and a secret).`);
  }
  return {
    scheme: 'gs',
    bucket,
    prefix,
    endpoint: GCS_ENDPOINT,
    forcePathStyle: true,
    region: 'auto',
    credentials,
    storageClass: nonEmpty(options.storageClass),
    checksumsWhenRequired: true,
    timeouts: options.timeouts ?? DEFAULT_TIMEOUTS,
    credentialsHint: options.credentialsHint,
  };
}

const AUTH_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired',
  'AllAccessDisabled', 'AccountProblem', 'InvalidSecurity', 'Forbidden', 'Unauthorized',
]);
const TRANSIENT_CODES = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'TooManyRequestsException', 'RequestTimeout',
  'InternalError', 'ServiceUnavailable', 'RequestTimeTooSkewed', 'TimeoutError',
]);

interface SdkErrorShape {
  readonly name?: string;
  readonly Code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/**
 * Objects in an S3 bucket (or an S3-compatible server, or GCS through its S3 API). Each call is
 * one attempt (the SDK's own retries are off) with a time limit; failures come back as typed
 * errors, and StorageError.transient tells a retrying wrapper which are worth another try.
 */
export class S3Storage implements Storage {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly storageClass: StorageClass | undefined;
  private readonly timeouts: RequestTimeouts;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly listPageSize: number;
  private readonly checksums: boolean;
  private readonly credentialHint: string;

  constructor(config: S3Config) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.location = `${config.scheme}://${config.bucket}${config.prefix === '' ? '' : `/${config.prefix.slice(0, -1)}`}`;
    this.storageClass = config.storageClass as StorageClass | undefined;
    this.timeouts = config.timeouts ?? DEFAULT_TIMEOUTS;
    this.multipartThreshold = config.multipartThreshold ?? 64 * MiB;
    this.partSize = config.partSize ?? 16 * MiB;
    this.partConcurrency = config.partConcurrency ?? 4;
    this.listPageSize = Math.min(config.listPageSize ?? 1000, 1000);
    this.checksums = !config.checksumsWhenRequired;
    this.credentialHint = config.credentialsHint ?? (config.scheme === 'gs' ? 'the HMAC key' : 'the access key and its secret');
    const maxSockets = config.maxSockets ?? 32;
    this.client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      credentials: config.credentials,
      maxAttempts: 1,
      followRegionRedirects: config.endpoint === undefined,
      requestChecksumCalculation: config.checksumsWhenRequired ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      responseChecksumValidation: config.checksumsWhenRequired ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
      },
    });
  }

  private keyOf(name: string): string {
    assertObjectName(name);
    return this.prefix + name;
  }

  private storageClassOf(name: string): StorageClass | undefined {
    return name.startsWith('data/') ? this.storageClass : undefined;
  }

  async put(name: string, data: ObjectContent, options?: CallOptions): Promise<void> {
    const key = this.keyOf(name);
    const parts = contentParts(data);
    const size = contentLength(parts);
    const cancel = options?.signal;
    if (size > this.multipartThreshold) {
      await this.putMultipart(name, key, parts, size, cancel);
      return;
    }
    await this.call(`write ${name}`, name, this.timeouts.dataMs, cancel, (abortSignal) => this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: key, Body: joinParts(parts), ContentLength: size,
      ContentType: 'application/octet-stream', StorageClass: this.storageClassOf(name),
    }), { abortSignal }));
  }

  /** One part per request, so each has the data time limit; the upload is aborted on failure. */
  private async putMultipart(name: string, key: string, parts: readonly Uint8Array[], size: number, cancel: AbortSignal | undefined): Promise<void> {
    const action = `write ${name}`;
    const created = await this.call(action, name, this.timeouts.metadataMs, cancel, (abortSignal) => this.client.send(new CreateMultipartUploadCommand({
      Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream', StorageClass: this.storageClassOf(name),
      ChecksumAlgorithm: this.checksums ? 'CRC32' : undefined,
    }), { abortSignal }));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw new StorageError(this.location, `${action} (the server returned no upload ID)`);
    try {
      const pieces = splitParts(parts, Math.max(this.partSize, Math.ceil(size / MAX_PARTS)));
      const completed: CompletedPart[] = [];
      await forEachLimited(pieces, this.partConcurrency, async (piece, index) => {
        const body = joinParts(piece);
        const out = await this.call(`${action} (part ${index + 1} of ${pieces.length})`, name, this.timeouts.dataMs, cancel, (abortSignal) => this.client.send(new UploadPartCommand({
          Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: index + 1, Body: body, ContentLength: body.length,
        }), { abortSignal }));
        completed[index] = { PartNumber: index + 1, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 };
      });
      await this.call(action, name, this.timeouts.dataMs, cancel, (abortSignal) => this.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed },
      }), { abortSignal }));
    } catch (err) {
      // Best effort: an upload left behind is invisible to readers and only costs space until a
      // lifecycle rule removes it (docs/storage.md suggests one). Not cancelled with the put: it
      // is one short request that saves space.
      await this.call(`abort the upload of ${name}`, name, this.timeouts.metadataMs, undefined, (abortSignal) => this.client.send(new AbortMultipartUploadCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId,
      }), { abortSignal })).catch(() => undefined);
      throw err;
    }
  }

  async get(name: string, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    const key = this.keyOf(name);
    if (range?.length === 0) {
      const { size } = await this.stat(name, options);
      if (range.offset > size) throw new ShortReadError(this.location, name, range, 0);
      return Buffer.alloc(0);
    }
    const header = range === undefined ? undefined : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    let bytes = await this.call(`read ${name}`, name, this.timeouts.dataMs, options?.signal, async (abortSignal) => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: header }), { abortSignal });
      const body = out.Body === undefined ? Buffer.alloc(0) : await readBody(out.Body as NodeJS.ReadableStream, abortSignal);
      // A server that ignores Range answers 200 with the whole object.
      if (range !== undefined && out.ContentRange === undefined && body.length > range.length) {
        return body.subarray(range.offset, range.offset + range.length);
      }
      return body;
    }, range);
    if (range !== undefined) {
      if (bytes.length < range.length) throw new ShortReadError(this.location, name, range, bytes.length);
      if (bytes.length > range.length) bytes = bytes.subarray(0, range.length);
    }
    return bytes;
  }

  async stat(name: string, options?: CallOptions): Promise<ObjectInfo> {
    const key = this.keyOf(name);
    const out = await this.call(`stat ${name}`, name, this.timeouts.metadataMs, options?.signal, (abortSignal) => this.client.send(new HeadObjectCommand({
      Bucket: this.bucket, Key: key,
    }), { abortSignal }));
    return { name, size: out.ContentLength ?? 0, modified: out.LastModified?.getTime() };
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.call(`list ${prefix === '' ? '/' : prefix}`, undefined, this.timeouts.metadataMs, options?.signal, (abortSignal) => this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token, MaxKeys: this.listPageSize,
      }), { abortSignal }));
      for (const obj of page.Contents ?? []) {
        const key = obj.Key;
        // Keys ending in "/" are folder markers made by consoles, not objects of ours.
        if (key === undefined || !key.startsWith(this.prefix) || key.endsWith('/')) continue;
        yield { name: key.slice(this.prefix.length), size: obj.Size ?? 0, modified: obj.LastModified?.getTime() };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      if (page.IsTruncated === true && token === undefined) {
        throw new StorageError(this.location, `list ${prefix} (the server cut the listing short without a continuation token)`);
      }
    } while (token !== undefined);
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    const key = this.keyOf(name);
    // S3 answers 204 whether or not the key existed.
    await this.call(`delete ${name}`, name, this.timeouts.metadataMs, options?.signal, (abortSignal) => this.client.send(new DeleteObjectCommand({
      Bucket: this.bucket, Key: key,
    }), { abortSignal }));
  }

  /** One attempt of one request with a time limit, until `cancel` fires; failures come back typed. */
  private call<T>(action: string, name: string | undefined, ms: number, cancel: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>, range?: ByteRange): Promise<T> {
    return attemptOnce(ms, run, (err) => this.mapError(err, action, name, range), cancel);
  }

  private mapError(err: unknown, action: string, name: string | undefined, range: ByteRange | undefined): Error {
    const settled = alreadyTyped(err, this.location, action);
    if (settled) return settled;
    const shape = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
    const status = shape.$metadata?.httpStatusCode;
    const code = shape.Code ?? shape.name ?? '';
    if (code === 'NoSuchBucket') {
      return new StorageError(this.location, `${action} (bucket "${this.bucket}" does not exist; create it first)`);
    }
    if (range !== undefined && (status === 416 || code === 'InvalidRange') && name !== undefined) {
      return new ShortReadError(this.location, name, range, 0);
    }
    if (name !== undefined && (status === 404 || code === 'NoSuchKey' || code === 'NotFound')) return new ObjectNotFoundError(this.location, name);
    if (code === 'CredentialsProviderError') {
      return new StorageAuthError(this.location, (err instanceof Error ? err.message : '').split('\n')[0] ?? '', this.credentialHint, { cause: compactCause(err), noCredentials: true });
    }
    if (TRANSIENT_CODES.has(code) || isTransientStatus(status)) return new StorageError(this.location, action, { cause: compactCause(err), transient: true });
    if (status === 401 || status === 403 || AUTH_CODES.has(code)) {
      const detail = code === '' || code === 'Unknown' || code === 'UnknownError' || /^\d+$/.test(code) ? `HTTP ${status ?? '?'}` : code;
      return new StorageAuthError(this.location, detail, this.credentialHint, { cause: compactCause(err) });
    }
    if (err instanceof Error && /region is missing/i.test(err.message)) {
      return new StorageError(this.location, `${action} (no region was given and the AWS SDK found none)`);
    }
    return new StorageError(this.location, action, { cause: compactCause(err), transient: isTransientNetworkError(err) });
  }
}
