import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.ts';
import { LocalStorage } from './local.ts';
import type { Storage } from './storage.ts';

/** Opens the backend a repository URL names: "/path", "file:///path" (S3, Azure, GCS to come). */
export function openStorage(url: string): Storage {
  if (url === '') throw new UsageError('No repository given: pass --repo or set ARCA_REPOSITORY.');
  if (url.startsWith('file://')) return new LocalStorage(fileURLToPath(url));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme) throw new UsageError(`Repository scheme "${scheme[1] ?? ''}://" is not supported yet; use a local path.`);
  return new LocalStorage(url);
}
