import { readFileSync } from 'node:fs';
import { UsageError } from '../repository/errors.ts';
import { Repository } from '../repository/repository.ts';
import { openStorage } from '../repository/storage/open.ts';
import type { Storage } from '../repository/storage/storage.ts';

/** Options every command takes. */
export interface GlobalOptions {
  readonly repo: string | undefined;
  readonly passwordFile: string | undefined;
  readonly json: boolean;
  readonly quiet: boolean;
}

export function repositoryUrl(options: GlobalOptions): string {
  const url = options.repo ?? process.env.ARCA_REPOSITORY;
  if (url === undefined || url === '') throw new UsageError('No repository given: pass --repo or set ARCA_REPOSITORY.');
  return url;
}

export function storageFor(options: GlobalOptions): Storage {
  return openStorage(repositoryUrl(options));
}

function firstLine(text: string): string {
  return text.replace(/\r?\n.*$/s, '');
}

/** The password from --password-file, ARCA_PASSWORD_FILE or ARCA_PASSWORD; never from argv. */
export function readPassword(options: GlobalOptions): Buffer {
  const file = options.passwordFile ?? process.env.ARCA_PASSWORD_FILE;
  if (file !== undefined && file !== '') {
    try {
      return Buffer.from(firstLine(readFileSync(file, 'utf8')));
    } catch (err) {
      throw new UsageError(`Cannot read the password file ${file}: ${err instanceof Error ? err.message : String(err)}.`);
    }
  }
  const password = process.env.ARCA_PASSWORD;
  if (password === undefined || password === '') {
    throw new UsageError('No password given: set ARCA_PASSWORD or ARCA_PASSWORD_FILE, or pass --password-file.');
  }
  return Buffer.from(password);
}

/** A second password for `key add` and `key passwd`: ARCA_NEW_PASSWORD(_FILE) or --new-password-file. */
export function readNewPassword(file: string | undefined): Buffer {
  const path = file ?? process.env.ARCA_NEW_PASSWORD_FILE;
  if (path !== undefined && path !== '') return Buffer.from(firstLine(readFileSync(path, 'utf8')));
  const password = process.env.ARCA_NEW_PASSWORD;
  if (password === undefined || password === '') throw new UsageError('No new password given: set ARCA_NEW_PASSWORD or pass --new-password-file.');
  return Buffer.from(password);
}

export async function openRepository(options: GlobalOptions, { withIndex }: { withIndex: boolean }): Promise<Repository> {
  const repo = await Repository.open(storageFor(options), readPassword(options));
  if (withIndex) await repo.loadIndex();
  return repo;
}
