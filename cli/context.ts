import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Writable } from 'node:stream';
import { CachingStorage } from '../repository/cache/caching-storage.ts';
import { defaultCacheRoot, RepositoryCache } from '../repository/cache/repository-cache.ts';
import { UsageError } from '../repository/errors.ts';
import { Repository } from '../repository/repository.ts';
import { LocalStorage } from '../repository/storage/local.ts';
import { openStorage } from '../repository/storage/open.ts';
import { RetryingStorage, retryPolicyFromEnv, type RetryingOptions } from '../repository/storage/retrying.ts';
import type { Storage } from '../repository/storage/storage.ts';

/** Options every command takes. */
export interface GlobalOptions {
  readonly repo: string | undefined;
  readonly passwordFile: string | undefined;
  readonly json: boolean;
  readonly quiet: boolean;
  /** --s3-endpoint: an S3-compatible server for s3:// repositories (else ARCA_S3_ENDPOINT). */
  readonly s3Endpoint?: string | undefined;
  /** --cache-dir: where the local cache lives (default $XDG_CACHE_HOME/arca or ~/.cache/arca). */
  readonly cacheDir?: string | undefined;
  /** --no-cache: read everything from the storage. */
  readonly noCache?: boolean;
  /** -v/--verbose: more detail, such as the stack of an unexpected error. */
  readonly verbose?: boolean;
}

export function repositoryUrl(options: GlobalOptions): string {
  const url = options.repo ?? process.env.ARCA_REPOSITORY;
  if (url === undefined || url === '') throw new UsageError('No repository given: pass --repo or set ARCA_REPOSITORY.');
  return url;
}

/** The repository's backend, wrapped in retries. */
export async function storageFor(options: GlobalOptions): Promise<Storage> {
  return withRetries(await backendFor(options), retryOptions(options));
}

/**
 * Remote backends get retries; a local directory does not: reading a damaged file again cannot
 * help, and retrying would only delay the error and print warnings.
 */
function withRetries(storage: Storage, retry: RetryingOptions, backend: Storage = storage): Storage {
  return backend instanceof LocalStorage ? storage : new RetryingStorage(storage, retry);
}

function backendFor(options: GlobalOptions): Promise<Storage> {
  return openStorage(repositoryUrl(options), { s3Endpoint: options.s3Endpoint });
}

function warn(options: GlobalOptions, message: string): void {
  if (!options.quiet) process.stderr.write(`arca: warning: ${message}.\n`);
}

function retryOptions(options: GlobalOptions): RetryingOptions {
  return {
    ...retryPolicyFromEnv(process.env),
    onRetry: (e) => { warn(options, `${e.error.message.replace(/\.$/, '')}; trying again${e.delayMs > 0 ? ` in ${(e.delayMs / 1000).toFixed(1)} s` : ''}`); },
  };
}

function firstLine(text: string): string {
  return text.replace(/\r?\n.*$/s, '');
}

/**
 * The password, first found of: --password-file, ARCA_PASSWORD_FILE, ARCA_PASSWORD; never from
 * argv. With none of them and a terminal on stdin, it is asked for (twice for a new repository).
 */
export async function readPassword(options: GlobalOptions, { confirm = false }: { confirm?: boolean } = {}): Promise<Buffer> {
  const file = options.passwordFile ?? process.env.ARCA_PASSWORD_FILE;
  const fromEnv = process.env.ARCA_PASSWORD;
  if ((file === undefined || file === '') && (fromEnv === undefined || fromEnv === '') && process.stdin.isTTY) {
    const password = await askPassword('Repository password: ');
    if (confirm && (await askPassword('Repeat the password: ')) !== password) throw new UsageError('The two passwords differ; nothing was changed.');
    if (password === '') throw new UsageError('An empty password is refused.');
    return Buffer.from(password);
  }
  return readPasswordFrom(file, 'ARCA_PASSWORD', '--password-file');
}

/** Reads one line from the terminal without echoing it. */
async function askPassword(question: string): Promise<string> {
  // readline echoes what is typed to its output: give it one that goes nowhere. It turns the
  // terminal's own echo off before the question shows, so nothing typed ahead is echoed either.
  const silent = new Writable({ write: (_chunk, _encoding, done) => { done(); } });
  const rl = readline.createInterface({ input: process.stdin, output: silent, terminal: true });
  process.stderr.write(question);
  try {
    return await rl.question('');
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** A password from `file` (its first line) if given, else from the environment variable `envName`. */
export function readPasswordFrom(file: string | undefined, envName: string, flagName: string): Buffer {
  if (file !== undefined && file !== '') {
    let password: string;
    try {
      password = firstLine(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`Cannot read the password file ${file}: ${err instanceof Error ? err.message : String(err)}.`);
    }
    if (password === '') throw new UsageError(`The password file ${file} is empty (its first line is the password); an empty password is refused.`);
    return Buffer.from(password);
  }
  const password = process.env[envName];
  if (password === undefined || password === '') {
    throw new UsageError(`No password given: set ${envName} or ${envName}_FILE, or pass ${flagName}.`);
  }
  return Buffer.from(password);
}

/** A second password for `key add` and `key passwd`: ARCA_NEW_PASSWORD(_FILE) or --new-password-file. */
export function readNewPassword(file: string | undefined): Buffer {
  return readPasswordFrom(file ?? process.env.ARCA_NEW_PASSWORD_FILE, 'ARCA_NEW_PASSWORD', '--new-password-file');
}

/**
 * Opens the repository through retrying(caching(backend)), the cache keyed by the repository ID
 * (so only known once the config is read). `cache: false` is for commands that must see the
 * storage itself, such as check.
 */
export async function openRepository(options: GlobalOptions, { withIndex, cache = true }: { withIndex: boolean; cache?: boolean }): Promise<Repository> {
  const backend = await backendFor(options);
  const retry = retryOptions(options);
  const plain = await Repository.open(withRetries(backend, retry), await readPassword(options));
  const repoCache = cache && options.noCache !== true
    ? await RepositoryCache.open({
      root: options.cacheDir !== undefined ? path.resolve(options.cacheDir) : defaultCacheRoot(process.env, os.homedir()),
      repoId: plain.config.id,
      onWarning: (message) => { warn(options, message); },
    })
    : undefined;
  const repo = repoCache ? plain.withStorage(withRetries(new CachingStorage(backend, repoCache.objects), retry, backend), { blobCache: repoCache.trees }) : plain;
  if (withIndex) {
    await repo.loadIndex();
    await repoCache?.dropTreesNotIn((id) => repo.locate(id) !== undefined);
  }
  return repo;
}
