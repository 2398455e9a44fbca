import { AccountSASPermissions, BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureBlobStorage, azureConfigFromUrl, type AzureConfig } from '../../repository/storage/azure.ts';
import { ObjectNotFoundError, ShortReadError, StorageAuthError, StorageError } from '../../repository/storage/storage.ts';
import { azuriteConnectionString, startAzurite, type AzuriteServer } from '../support/azurite.ts';
import { storageConformance } from './conformance.ts';
import { hang, reply, reset, scriptedFailure, stallBody, storageCalls, type FakeHandler } from './fake-http.ts';

let server: AzuriteServer;
let next = 0;

beforeAll(async () => { server = await startAzurite(); });
afterAll(async () => { await server.stop(); });

function config(connectionString = server.connectionString): AzureConfig {
  return {
    ...azureConfigFromUrl(`azure://${server.container}/conformance-${next++}`, { env: { AZURE_STORAGE_CONNECTION_STRING: connectionString } }),
    // The service pages at 5,000 blobs; 1,000 makes the conformance listing of 1,100 take two pages.
    listPageSize: 1000,
  };
}

storageConformance('Azure Blob (Azurite)', {
  fresh: () => Promise.resolve(new AzureBlobStorage(config())),
  badCredentials: () => Promise.resolve(new AzureBlobStorage(config(azuriteConnectionString(server.endpoint, Buffer.alloc(64, 7).toString('base64'))))),
});

/** An account SAS token (without "?") for the blob service with the given permissions. */
function accountSas(permissions: string): string {
  const client = new BlobServiceClient(server.endpoint, new StorageSharedKeyCredential(server.account, server.accountKey));
  const url = client.generateAccountSasUrl(new Date(Date.now() + 3_600_000), AccountSASPermissions.parse(permissions), 'sco');
  return new URL(url).search.slice(1);
}

describe('Azure backend against Azurite', () => {
  it('opens with AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, at ARCA_AZURE_ENDPOINT', async () => {
    const base = { AZURE_STORAGE_ACCOUNT: server.account, ARCA_AZURE_ENDPOINT: server.endpoint };
    const withKey = new AzureBlobStorage(azureConfigFromUrl(`azure://${server.container}/by-key`, { env: { ...base, AZURE_STORAGE_KEY: server.accountKey } }));
    await withKey.put('config', Buffer.from('by key'));
    expect((await withKey.get('config')).toString()).toBe('by key');

    const sas = accountSas('rwdlc');
    const withSas = new AzureBlobStorage(azureConfigFromUrl(`azure://${server.container}/by-key`, { env: { ...base, AZURE_STORAGE_SAS_TOKEN: `?${sas}` } }));
    expect((await withSas.get('config')).toString()).toBe('by key');
    await withSas.put('keys/k1', Buffer.from('by sas'));
    expect((await withKey.get('keys/k1')).toString()).toBe('by sas');
    const names: string[] = [];
    for await (const o of withSas.list('')) names.push(o.name);
    expect(names.sort()).toEqual(['config', 'keys/k1']);
    await withSas.delete('keys/k1');

    const readOnlySas = accountSas('rl');
    const readOnly = new AzureBlobStorage(azureConfigFromUrl(`azure://${server.container}/by-key`, { env: { ...base, AZURE_STORAGE_SAS_TOKEN: readOnlySas } }));
    expect((await readOnly.get('config')).toString()).toBe('by key');
    expect(await readOnly.put('keys/k2', Buffer.from('x')).catch((e: unknown) => e)).toBeInstanceOf(StorageAuthError);
  });

  it('reports a missing container as a StorageError that says to create it', async () => {
    const storage = new AzureBlobStorage({ ...config(), container: 'no-such-container' });
    const err = await storage.put('config', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(/container "no-such-container" does not exist; create it first/);
    expect((err as StorageError).transient).toBe(false);
  });
});

describe('Azure backend failure mapping (scripted HTTP server)', () => {
  const azureError = (status: number, code: string): FakeHandler => reply(status,
    `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${code} happened</Message></Error>`, { 'x-ms-error-code': code });

  function failureOf(handler: FakeHandler, call: (s: AzureBlobStorage) => Promise<unknown>, timeouts = { dataMs: 5_000, metadataMs: 5_000 }): Promise<{ err: unknown; requests: number; ms: number }> {
    return scriptedFailure(handler, (endpoint) => new AzureBlobStorage({
    ...azureConfigFromUrl('azure://container/repo', { env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(`${endpoint}/devstoreaccount1`) } }),
    timeouts,
  }), call);
  }

  const { get, put, stat, list } = storageCalls;

  it.each([
    ['503 ServerBusy', azureError(503, 'ServerBusy')],
    ['500 InternalError', azureError(500, 'InternalError')],
    ['500 OperationTimedOut', azureError(500, 'OperationTimedOut')],
    ['429 without a body', reply(429)],
    ['a dropped connection', reset],
  ])('marks %s as transient, after exactly one request', async (_label, handler) => {
    for (const call of [get, put, stat, list]) {
      const { err, requests } = await failureOf(handler, call);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).transient).toBe(true);
      expect(requests).toBe(1);
    }
  });

  it('maps 403 to StorageAuthError, 404 BlobNotFound to ObjectNotFoundError, 416 to ShortReadError, 400 to a permanent StorageError', async () => {
    expect((await failureOf(azureError(403, 'AuthenticationFailed'), get)).err).toBeInstanceOf(StorageAuthError);
    expect((await failureOf(azureError(403, 'AuthorizationPermissionMismatch'), put)).err).toBeInstanceOf(StorageAuthError);
    expect((await failureOf(azureError(404, 'BlobNotFound'), stat)).err).toBeInstanceOf(ObjectNotFoundError);
    expect((await failureOf(azureError(416, 'InvalidRange'), (s) => s.get('config', { offset: 5, length: 1 }))).err).toBeInstanceOf(ShortReadError);
    const { err } = await failureOf(azureError(400, 'InvalidHeaderValue'), put);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(false);
  });

  it('gives up on a request without an answer after its time limit, as a transient StorageError', async () => {
    const { err, ms } = await failureOf(hang, stat, { dataMs: 300, metadataMs: 200 });
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(true);
    expect((err as StorageError).message).toMatch(/no answer within 0\.2 s/);
    expect(ms).toBeGreaterThanOrEqual(190); // it waited for the limit (a hang would end the test)
  });

  it('gives up on a body that stops arriving after the data time limit', async () => {
    const { err, ms } = await failureOf(stallBody(1000, { 'x-ms-blob-type': 'BlockBlob', etag: '"0x1"', 'last-modified': new Date().toUTCString() }), get, { dataMs: 300, metadataMs: 300 });
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).transient).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(290); // it waited for the limit (a hang would end the test)
  });
});
