import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Writable } from 'node:stream';
import { defaultCacheRoot } from '../repository/cache/repository-cache.ts';
import type { KdfSettings } from '../repository/crypto/kdf.ts';
import { ArcaError, OperationCanceledError, UsageError } from '../repository/errors.ts';
import type { Logger } from '../repository/logger.ts';
import { initRepository, openRepository as open, type RepositoryOptions } from '../repository/open-repository.ts';
import type { InitOptions, Repository } from '../repository/repository.ts';
import { backendOptionsFromEnv, timeoutsFromEnv } from './backend-env.ts';
import { stderrLogger } from './stderr-logger.ts';
import { retryPolicyFor } from '../repository/storage/retrying.ts';

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

/** Warnings as "arca: warning: ..." lines on stderr, unless --quiet. */
export function cliLogger(options: GlobalOptions): Logger {
  return stderrLogger({ quiet: options.quiet, verbose: options.verbose });
}

/** What the repository layer needs to reach the repository at `url`, from flags and the environment. */
function repositoryOptions(options: GlobalOptions, url: string, password: Buffer, cache: boolean): RepositoryOptions {
  const cacheDir = !cache || options.noCache === true ? undefined
    : options.cacheDir !== undefined ? path.resolve(options.cacheDir) : defaultCacheRoot(process.env, os.homedir());
  return {
    url,
    password,
    backend: backendOptionsFromEnv(url, process.env, { s3Endpoint: options.s3Endpoint }),
    retry: retryPolicyFor(timeoutsFromEnv(process.env)),
    cacheDir,
    logger: cliLogger(options),
  };
}

/** Creates the repository the flags name (`arca init`). */
export async function createRepository(options: GlobalOptions, config: InitOptions): Promise<Repository> {
  const url = repositoryUrl(options);
  return initRepository({ ...repositoryOptions(options, url, await readPassword(options, { confirm: true }), false), config, kdf: kdfSettings() });
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

/** ARCA_KDF_N fixes scrypt's N for new key files (tests and benchmarks skip the deliberate slowness). */
export function kdfSettings(): KdfSettings {
  const fixed = process.env.ARCA_KDF_N;
  return fixed === undefined || fixed === '' ? {} : { fixedN: Number(fixed) };
}

/** ARCA_WORKERS: the worker threads of a backup or restore (default: one per core). */
export function workerCount(): number | undefined {
  return Number(process.env.ARCA_WORKERS ?? '') || undefined;
}

/** An error of the repository layer with what a CLI user can do about it. */
class HintedError extends ArcaError {
  constructor(err: ArcaError, hint: string) {
    super(err.code, `${err.message.replace(/\.$/, '')}; ${hint}.`, { cause: err });
  }
}

const HINTS: Readonly<Record<string, string>> = {
  ARCA_ERR_REPO_NOT_FOUND: 'create one with "arca init"',
  ARCA_ERR_WRONG_PASSWORD: 'check ARCA_PASSWORD or the password file',
};

/** `err` with the CLI's hint for its code, if it has one. */
export function withCliHint(err: unknown): unknown {
  const hint = err instanceof ArcaError ? HINTS[err.code] : undefined;
  return hint === undefined ? err : new HintedError(err as ArcaError, hint);
}

/**
 * Opens the repository through retrying(caching(backend)) (see openRepository in repository/).
 * `cache: false` is for commands that must see the storage itself, such as check.
 */
export async function openRepository(options: GlobalOptions, { withIndex, cache = true }: { withIndex: boolean; cache?: boolean }): Promise<Repository> {
  let repo: Repository;
  try {
    repo = await open(repositoryOptions(options, repositoryUrl(options), await readPassword(options), cache));
  } catch (err) {
    throw withCliHint(err);
  }
  if (withIndex) await repo.loadIndex();
  return repo;
}

/** A second repository (`copy --from-repo`): same flags, its own URL and password. */
export async function openOtherRepository(options: GlobalOptions, url: string, password: Buffer): Promise<Repository> {
  try {
    return await open(repositoryOptions(options, url, password, false));
  } catch (err) {
    throw withCliHint(err);
  }
}

/** What ended a run early: SIGINT (Ctrl-C) or SIGTERM, with the exit code the shell expects. */
export interface Interruption {
  readonly signal: AbortSignal;
  /** 130 after SIGINT, 143 after SIGTERM; undefined while neither came. */
  exitCode(): number | undefined;
  /** Stops listening (the default handlers return). */
  dispose(): void;
}

const SIGNAL_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * SIGINT and SIGTERM cancel the run through an AbortSignal: the engine stops within seconds,
 * releases its lease and saves nothing half-done. A second signal ends the process at once.
 */
export function interruptions(): Interruption {
  const controller = new AbortController();
  let code: number | undefined;
  const handlers = (Object.keys(SIGNAL_EXIT) as Array<keyof typeof SIGNAL_EXIT>).map((name) => {
    const handler = (): void => {
      if (code !== undefined) process.exit(code);
      code = SIGNAL_EXIT[name];
      controller.abort(new OperationCanceledError({ cause: name }));
    };
    process.on(name, handler);
    return { name, handler };
  });
  return {
    signal: controller.signal,
    exitCode: () => code,
    dispose: () => { for (const { name, handler } of handlers) process.off(name, handler); },
  };
}
