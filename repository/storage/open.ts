import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.ts';
import { LocalStorage } from './local.ts';
import type { Storage } from './storage.ts';

export interface OpenStorageOptions {
  /** The --s3-endpoint flag: an S3-compatible server for s3:// URLs (wins over ARCA_S3_ENDPOINT). */
  readonly s3Endpoint?: string | undefined;
  /** Where credentials and settings are read from; process.env unless a test passes its own. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Opens the backend a repository URL names: "/path" or "file:///path" (local directory),
 * "s3://bucket/prefix", "gs://bucket/prefix" (GCS through its S3 interoperability API) or
 * "azure://container/prefix". docs/storage.md tells how to set each one up. The cloud SDKs are
 * loaded only for their own schemes: together they would add some 80 MB and a tenth of a second to
 * every command.
 */
export async function openStorage(url: string, options: OpenStorageOptions = {}): Promise<Storage> {
  if (url === '') throw new UsageError('No repository given: pass --repo or set ARCA_REPOSITORY.');
  if (url.startsWith('file://')) return new LocalStorage(localPathOf(url));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
      return new LocalStorage(url);
    case 's3': {
      const { S3Storage, s3ConfigFromUrl } = await import('./s3.ts');
      return new S3Storage(s3ConfigFromUrl(url, options));
    }
    case 'gs': {
      const { S3Storage, gcsConfigFromUrl } = await import('./s3.ts');
      return new S3Storage(gcsConfigFromUrl(url, options));
    }
    case 'azure': {
      const { AzureBlobStorage, azureConfigFromUrl } = await import('./azure.ts');
      return new AzureBlobStorage(azureConfigFromUrl(url, options));
    }
    default:
      throw new UsageError(`Repository scheme "${scheme}://" is not supported; use a local path, s3://, gs:// or azure://.`);
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
