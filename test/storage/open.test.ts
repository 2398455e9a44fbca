import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendOptionsFromEnv, type Environment } from '../../cli/backend-env.ts';
import { UsageError } from '../../repository/errors.ts';
import { AzureBlobStorage, azureConfigFromUrl } from '../../repository/storage/azure.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { openStorage } from '../../repository/storage/open.ts';
import { DEFAULT_TIMEOUTS } from '../../repository/storage/remote.ts';
import { GCS_ENDPOINT, gcsConfigFromUrl, S3Storage, s3ConfigFromUrl, type S3Config } from '../../repository/storage/s3.ts';

function usageError(run: () => unknown): UsageError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

async function openError(url: string, env: Environment): Promise<UsageError> {
  try {
    await openStorage(url, backendOptionsFromEnv(url, env));
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

/** How the CLI turns a URL, its flags and the environment into a storage's configuration. */
function s3FromEnv(url: string, env: Environment, s3Endpoint?: string): S3Config {
  return s3ConfigFromUrl(url, backendOptionsFromEnv(url, env, { s3Endpoint }).s3);
}

describe('openStorage', () => {
  const env = { AZURE_STORAGE_CONNECTION_STRING: 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net', GOOGLE_HMAC_ACCESS_KEY_ID: 'GOOG1', GOOGLE_HMAC_SECRET: 'secret' };
  const open = (url: string): ReturnType<typeof openStorage> => openStorage(url, backendOptionsFromEnv(url, env));

  it('opens each URL form with its backend and names the location', async () => {
    expect(await open('/srv/repo')).toBeInstanceOf(LocalStorage);
    expect((await open('relative/repo')).location).toBe(path.resolve('relative/repo'));
    expect((await open('file:///srv/repo')).location).toBe('/srv/repo');
    const s3 = await open('s3://my-bucket/some/prefix/');
    expect(s3).toBeInstanceOf(S3Storage);
    expect(s3.location).toBe('s3://my-bucket/some/prefix');
    expect((await open('s3://my-bucket')).location).toBe('s3://my-bucket');
    const gs = await open('gs://my-bucket/repo');
    expect(gs).toBeInstanceOf(S3Storage);
    expect(gs.location).toBe('gs://my-bucket/repo');
    const azure = await open('azure://backups/cluster-a');
    expect(azure).toBeInstanceOf(AzureBlobStorage);
    expect(azure.location).toBe('azure://backups/cluster-a');
  });

  it('refuses unknown schemes, an empty URL and malformed bucket or container names with a UsageError', async () => {
    expect((await openError('ftp://host/repo', env)).message).toMatch(/"ftp:\/\/" is not supported/);
    await openError('', env);
    await openError('s3://', env);
    await openError('s3://Upper_Case/x', env);
    await openError('s3://bucket/a/../b', env);
    await openError('azure://ab/x', env);
    await openError('azure://double--hyphen/x', env);
  });

  it('takes everything from its options, not the environment: a repository without them gets no credentials', () => {
    expect(s3ConfigFromUrl('s3://bucket')).toMatchObject({ endpoint: undefined, region: undefined, credentials: undefined, timeouts: DEFAULT_TIMEOUTS });
    expect(usageError(() => gcsConfigFromUrl('gs://bucket')).message).toMatch(/needs an HMAC key/);
    expect(usageError(() => azureConfigFromUrl('azure://backups')).message).toMatch(/needs credentials/);
    expect(usageError(() => azureConfigFromUrl('azure://backups')).message).not.toMatch(/AZURE_STORAGE/);
  });
});

describe('s3:// configuration from the CLI environment', () => {
  it('uses the AWS chains by default: no endpoint, virtual-hosted addressing, flexible checksums', () => {
    const config = s3FromEnv('s3://bucket/a//b/', {});
    expect(config).toMatchObject({ scheme: 's3', bucket: 'bucket', prefix: 'a/b/', endpoint: undefined, forcePathStyle: false, region: undefined, credentials: undefined, checksumsWhenRequired: false });
    expect(config.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(s3FromEnv('s3://bucket', { AWS_REGION: 'eu-west-1' }).region).toBe('eu-west-1');
    expect(s3FromEnv('s3://bucket', { AWS_DEFAULT_REGION: 'eu-west-2' }).region).toBe('eu-west-2');
  });

  it('takes the endpoint from --s3-endpoint over ARCA_S3_ENDPOINT, with path-style unless ARCA_S3_PATH_STYLE=false', () => {
    const fromEnv = s3FromEnv('s3://bucket/p', { ARCA_S3_ENDPOINT: 'http://minio:9000/' });
    expect(fromEnv).toMatchObject({ endpoint: 'http://minio:9000', forcePathStyle: true, region: 'us-east-1', checksumsWhenRequired: true });
    expect(s3FromEnv('s3://bucket/p', { ARCA_S3_ENDPOINT: 'http://minio:9000' }, 'https://s3.example.net').endpoint).toBe('https://s3.example.net');
    expect(s3FromEnv('s3://bucket', { ARCA_S3_ENDPOINT: 'http://x:1', ARCA_S3_PATH_STYLE: 'false' }).forcePathStyle).toBe(false);
    expect(s3FromEnv('s3://bucket', { ARCA_S3_PATH_STYLE: 'true' }).forcePathStyle).toBe(true);
    usageError(() => s3FromEnv('s3://bucket', { ARCA_S3_PATH_STYLE: 'maybe' }));
    usageError(() => s3FromEnv('s3://bucket', {}, 'minio:9000'));
  });

  it('reads the storage class for packs and the request time limit', () => {
    const config = s3FromEnv('s3://bucket', { ARCA_S3_STORAGE_CLASS: 'STANDARD_IA', ARCA_STORAGE_TIMEOUT: '120' });
    expect(config.storageClass).toBe('STANDARD_IA');
    expect(config.timeouts).toEqual({ dataMs: 120_000, metadataMs: 30_000 });
    expect(s3FromEnv('s3://bucket', { ARCA_STORAGE_TIMEOUT: '5' }).timeouts).toEqual({ dataMs: 5_000, metadataMs: 5_000 });
    usageError(() => s3FromEnv('s3://bucket', { ARCA_STORAGE_TIMEOUT: 'soon' }));
  });
});

// GCS cannot be served locally (no emulator of its S3 interoperability API on npm), so gs:// is
// covered here by its configuration only; the S3 code path it uses is the one tested against s3rver.
describe('gs:// configuration (configuration only: GCS cannot be served locally)', () => {
  const gcsFromEnv = (url: string, env: Environment): S3Config => gcsConfigFromUrl(url, backendOptionsFromEnv(url, env).s3);

  it('goes to storage.googleapis.com with region "auto", path-style, no flexible checksums, and the HMAC key', () => {
    const config = gcsFromEnv('gs://my-bucket/backups/prod', { GOOGLE_HMAC_ACCESS_KEY_ID: 'GOOG1EXAMPLE', GOOGLE_HMAC_SECRET: 'hmac-secret', AWS_ACCESS_KEY_ID: 'ignored' });
    expect(config).toMatchObject({
      scheme: 'gs', bucket: 'my-bucket', prefix: 'backups/prod/', endpoint: GCS_ENDPOINT, region: 'auto', forcePathStyle: true,
      checksumsWhenRequired: true, credentials: { accessKeyId: 'GOOG1EXAMPLE', secretAccessKey: 'hmac-secret' },
    });
  });

  it('falls back to AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and asks for a key when there is none', () => {
    expect(gcsFromEnv('gs://bucket', { AWS_ACCESS_KEY_ID: 'A', AWS_SECRET_ACCESS_KEY: 'S' }).credentials).toEqual({ accessKeyId: 'A', secretAccessKey: 'S' });
    expect(usageError(() => gcsFromEnv('gs://bucket', { GOOGLE_HMAC_ACCESS_KEY_ID: 'only-the-id' })).message).toMatch(/GOOGLE_HMAC_ACCESS_KEY_ID and GOOGLE_HMAC_SECRET/);
  });

  it('ignores --s3-endpoint (which is for s3:// URLs)', async () => {
    const env = { GOOGLE_HMAC_ACCESS_KEY_ID: 'a', GOOGLE_HMAC_SECRET: 'b' };
    const storage = await openStorage('gs://bucket/x', backendOptionsFromEnv('gs://bucket/x', env, { s3Endpoint: 'http://127.0.0.1:1' }));
    expect(storage.location).toBe('gs://bucket/x');
    expect(gcsFromEnv('gs://bucket/x', env).endpoint).toBe(GCS_ENDPOINT);
  });
});

describe('azure:// configuration from the CLI environment', () => {
  const azureFromEnv = (url: string, env: Environment): ReturnType<typeof azureConfigFromUrl> => azureConfigFromUrl(url, backendOptionsFromEnv(url, env).azure);

  it('prefers a connection string, then account with key, then account with SAS token', () => {
    const cs = 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;EndpointSuffix=core.windows.net';
    expect(azureFromEnv('azure://backups/p/', { AZURE_STORAGE_CONNECTION_STRING: cs, AZURE_STORAGE_ACCOUNT: 'x', AZURE_STORAGE_KEY: 'y' }))
      .toMatchObject({ container: 'backups', prefix: 'p/', credential: { kind: 'connection-string', connectionString: cs } });
    expect(azureFromEnv('azure://backups', { AZURE_STORAGE_ACCOUNT: 'acct', AZURE_STORAGE_KEY: 'a2V5', AZURE_STORAGE_SAS_TOKEN: 'sv=1' }).credential)
      .toEqual({ kind: 'shared-key', account: 'acct', key: 'a2V5', endpoint: 'https://acct.blob.core.windows.net' });
    expect(azureFromEnv('azure://backups', { AZURE_STORAGE_ACCOUNT: 'acct', AZURE_STORAGE_SAS_TOKEN: '?sv=1&sig=x', ARCA_AZURE_ENDPOINT: 'http://127.0.0.1:10000/acct/' }).credential)
      .toEqual({ kind: 'sas', account: 'acct', sasToken: 'sv=1&sig=x', endpoint: 'http://127.0.0.1:10000/acct' });
  });

  it('asks for credentials when there are none, and rejects a malformed connection string', async () => {
    expect(usageError(() => azureFromEnv('azure://backups', { AZURE_STORAGE_ACCOUNT: 'acct' })).message).toMatch(/AZURE_STORAGE_CONNECTION_STRING/);
    await openError('azure://backups', { AZURE_STORAGE_CONNECTION_STRING: 'nonsense' });
  });
});
