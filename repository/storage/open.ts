import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.ts';
import type { AzureOptions } from './azure.ts';
import { LocalStorage } from './local.ts';
import type { RequestTimeouts } from './remote.ts';
import type { S3Options } from './s3.ts';
import type { Storage } from './storage.ts';

/**
 * How to reach a repository's backend, whatever the entry point read it from (flags and the
 * environment for the CLI; a Secret for the agent). Only the part for the URL's scheme is used.
 */
export interface BackendOptions {
  /** For s3:// and gs:// (for gs://, `credentials` is the HMAC key). */
  readonly s3?: S3Options | undefined;
  readonly azure?: AzureOptions | undefined;
  /** Per-request time limits of the remote backends (default DEFAULT_TIMEOUTS). */
  readonly timeouts?: RequestTimeouts | undefined;
}

/** The scheme of a repository URL: "local" for a path or file:// URL. */
export function schemeOf(url: string): string {
  if (url.startsWith('file://')) return 'local';
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase() ?? 'local';
}

/**
 * Opens the backend a repository URL names: "/path" or "file:///path" (local directory),
 * "s3://bucket/prefix", "gs://bucket/prefix" (GCS through its S3 interoperability API) or
 * "azure://container/prefix". docs/storage.md tells how to set each one up. The cloud SDKs are
 * loaded only for their own schemes: together they would add some 80 MB and a tenth of a second to
 * every command.
 */
export async function openStorage(url: string, options: BackendOptions = {}): Promise<Storage> {
  if (url === '') throw new UsageError('The repository URL is empty.');
  const timeouts = options.timeouts;
  const s3 = { ...options.s3, timeouts: options.s3?.timeouts ?? timeouts };
  switch (schemeOf(url)) {
    case 'local':
      return new LocalStorage(url.startsWith('file://') ? localPathOf(url) : url);
    case 's3': {
      const { S3Storage, s3ConfigFromUrl } = await import('./s3.ts');
      return new S3Storage(s3ConfigFromUrl(url, s3));
    }
    case 'gs': {
      const { S3Storage, gcsConfigFromUrl } = await import('./s3.ts');
      return new S3Storage(gcsConfigFromUrl(url, s3));
    }
    case 'azure': {
      const { AzureBlobStorage, azureConfigFromUrl } = await import('./azure.ts');
      return new AzureBlobStorage(azureConfigFromUrl(url, { ...options.azure, timeouts: options.azure?.timeouts ?? timeouts }));
    }
    default:
      throw new UsageError(`Repository scheme "${schemeOf(url)}://" is not supported; use a local path, s3://, gs:// or azure://.`);
  }
}

/** The directory a file:// URL names; only absolute paths have one (file:///srv/repo). */
function localPathOf(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    throw new UsageError(`"${url}" is not a file URL of an absolute path: write file:///absolute/path, or a plain path (relative paths are fine there).`);
  }
}
