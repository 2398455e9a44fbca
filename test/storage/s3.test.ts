import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gcsConfigFromUrl, S3Storage, s3ConfigFromUrl, type S3Config } from '../../repository/storage/s3.ts';
import { ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError } from '../../repository/storage/storage.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { storageConformance } from './conformance.ts';
import { hang, reply, reset, scriptedFailure, stallBody, storageCalls, type FakeHandler } from './fake-http.ts';

let server: S3Server;
let next = 0;

beforeAll(async () => { server = await startS3Server(); });
afterAll(async () => { await server.stop(); });

function config(overrides: Partial<S3Config> = {}): S3Config {
  return {
    ...s3ConfigFromUrl(`s3://${server.bucket}/conformance-${next++}`, { s3Endpoint: server.endpoint, env: {} }),
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    ...overrides,
  };
}

storageConformance('S3 (s3rver)', {
  fresh: () => Promise.resolve(new S3Storage(config())),
  badCredentials: () => Promise.resolve(new S3Storage(config({ credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'wrong' } }))),
  skip: {
    rangeOfEmptyObject: 's3rver promises one byte for "Range: bytes=0-0" of an empty object and hangs up after its 5 s keep-alive (AWS answers 416, which the backend maps to ShortReadError; see the scripted 416 case)',
  },
});

describe('S3 backend against s3rver', () => {
  it.skip('refuses a known access key with a wrong secret (skipped: s3rver does not verify SigV4 signatures, only that the key ID exists)', () => undefined);

  it('applies ARCA_S3_STORAGE_CLASS to data/ objects only, in single and multipart uploads', async () => {
    const cfg = config({ storageClass: 'STANDARD_IA', multipartThreshold: 3 * 1024 * 1024, partSize: 1024 * 1024 });
    const storage = new S3Storage(cfg);
    const big = randomBytes(3 * 1024 * 1024 + 5);
    await storage.put('data/ab/single', Buffer.from('pack'));
    await storage.put('data/ab/multi', [big.subarray(0, 100), big.subarray(100)]);
    await storage.put('index/plain', Buffer.from('index'));
    expect((await storage.get('data/ab/multi')).equals(big)).toBe(true);
    const client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: cfg.credentials });
    const classOf = async (name: string): Promise<string | undefined> =>
      (await client.send(new HeadObjectCommand({ Bucket: server.bucket, Key: cfg.prefix + name }))).StorageClass;
    expect(await classOf('data/ab/single')).toBe('STANDARD_IA');
    expect(await classOf('index/plain')).toBeUndefined();
    // s3rver drops the storage class of multipart uploads (CreateMultipartUpload metadata is not
    // kept); the request carries it, which AWS honours. Only the content is checked here.
    client.destroy();
  });

  it('works with a gs:// configuration (region "auto", HMAC key, no flexible checksums) when only the endpoint is swapped for s3rver', async () => {
    const gcs = gcsConfigFromUrl(`gs://${server.bucket}/as-gcs`, { env: { GOOGLE_HMAC_ACCESS_KEY_ID: server.accessKeyId, GOOGLE_HMAC_SECRET: server.secretAccessKey } });
    const storage = new S3Storage({ ...gcs, endpoint: server.endpoint });
    expect(storage.location).toBe(`gs://${server.bucket}/as-gcs`);
    await storage.put('data/ab/pack', [Buffer.from('in '), Buffer.from('parts')]);
    expect((await storage.get('data/ab/pack', { offset: 3, length: 5 })).toString()).toBe('parts');
  });

  it('reports a missing bucket as a StorageError that says to create it', async () => {
    const storage = new S3Storage({ ...config(), bucket: 'no-such-bucket' });
    const err = await storage.get('config').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(/bucket "no-such-bucket" does not exist; create it first/);
    expect((err as StorageError).transient).toBe(false);
  });
});

describe('S3 backend failure mapping (scripted HTTP server)', () => {
  const s3Error = (code: string): string => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} happened</Message><RequestId>r1</RequestId></Error>`;

  function failureOf(handler: FakeHandler, call: (s: S3Storage) => Promise<unknown>, timeouts = { dataMs: 5_000, metadataMs: 5_000 }): Promise<{ err: unknown; requests: number; ms: number }> {
    return scriptedFailure(handler, (endpoint) => new S3Storage({
    ...s3ConfigFromUrl('s3://bucket/repo', { s3Endpoint: endpoint, env: {} }),
    credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret' },
    timeouts,
  }), call);
  }

  const { get, put, stat, list } = storageCalls;

  // A HEAD (stat) answer has no body, so only its status can tell: 400 RequestTimeout is not
  // recognisable there and stays permanent.
  it.each([
    ['503 SlowDown', reply(503, s3Error('SlowDown')), [get, put, stat, list]],
    ['500 InternalError', reply(500, s3Error('InternalError')), [get, put, stat, list]],
    ['429 without a body', reply(429), [get, put, stat, list]],
    ['400 RequestTimeout', reply(400, s3Error('RequestTimeout')), [get, put]],
    ['a dropped connection', reset, [get, put, stat, list]],
  ])('marks %s as transient, after exactly one request', async (_label, handler, calls) => {
    for (const call of calls) {
      const { err, requests } = await failureOf(handler, call);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).transient).toBe(true);
      expect(requests).toBe(1);
    }
  });

  it('maps 403 AccessDenied to StorageAuthError, 404 NoSuchKey to ObjectNotFoundError, 400 InvalidArgument to a permanent StorageError', async () => {
    expect((await failureOf(reply(403, s3Error('AccessDenied')), (s) => s.get('config'))).err).toBeInstanceOf(StorageAuthError);
    expect((await failureOf(reply(403), (s) => s.stat('config'))).err).toBeInstanceOf(StorageAuthError);
    expect((await failureOf(reply(404, s3Error('NoSuchKey')), (s) => s.get('config'))).err).toBeInstanceOf(ObjectNotFoundError);
    expect((await failureOf(reply(416, s3Error('InvalidRange')), (s) => s.get('config', { offset: 0, length: 1 }))).err).toBeInstanceOf(ShortReadError);
    const { err } = await failureOf(reply(400, s3Error('InvalidArgument')), (s) => s.put('config', Buffer.from('x')));
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(false);
  });

  it('gives up on a request without an answer after its time limit, as a transient StorageError', async () => {
    const { err, ms } = await failureOf(hang, (s) => s.stat('config'), { dataMs: 300, metadataMs: 200 });
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(true);
    expect((err as StorageError).message).toMatch(/no answer within 0\.2 s/);
    expect(ms).toBeGreaterThanOrEqual(190); // it waited for the limit (a hang would end the test)
  });

  it('gives up on a body that stops arriving after the data time limit', async () => {
    const { err, ms } = await failureOf(stallBody(1000), (s) => s.get('config'), { dataMs: 300, metadataMs: 300 });
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(290); // it waited for the limit (a hang would end the test)
  });
});
