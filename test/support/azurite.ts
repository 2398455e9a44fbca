import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { stopChild, waitForLine } from './child-process.ts';

/**
 * Azurite's blob service (npm `azurite`) in a child process on a free loopback port, keeping
 * blobs in memory, with one empty container, for tests and benchmarks. Telemetry is off and the
 * API version check is skipped (the SDK may be newer than the emulator).
 *
 * Azurite checks Shared Key signatures, so a wrong account key is refused as it would be by Azure.
 */
export interface AzuriteServer {
  readonly connectionString: string;
  readonly container: string;
  /** http://127.0.0.1:PORT/devstoreaccount1 — for ARCA_AZURE_ENDPOINT. */
  readonly endpoint: string;
  readonly account: string;
  readonly accountKey: string;
  readonly stop: () => Promise<void>;
}

/** Azurite's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const require = createRequire(import.meta.url);
const AZURITE_BLOB_MAIN = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js');
const START_TIMEOUT_MS = 30_000;

export function azuriteConnectionString(endpoint: string, key = AZURITE_KEY): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${key};BlobEndpoint=${endpoint};`;
}

export async function startAzurite(options: { container?: string } = {}): Promise<AzuriteServer> {
  const container = options.container ?? 'arca-test';
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'arca-azurite-'));
  const child = spawn(process.execPath, [
    AZURITE_BLOB_MAIN, '--blobHost', '127.0.0.1', '--blobPort', '0', '--inMemoryPersistence', '--silent',
    '--skipApiVersionCheck', '--disableTelemetry', '--loose',
  ], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const cleanup = async (): Promise<void> => {
    await stopChild(child);
    await rm(cwd, { recursive: true, force: true });
  };
  try {
    const port = await waitForLine('Azurite', child, /listens on https?:\/\/[^:]+:(\d+)/, START_TIMEOUT_MS);
    const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
    const connectionString = azuriteConnectionString(endpoint);
    await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container).create();
    return { connectionString, container, endpoint, account: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
