/**
 * The repositories a process uses (the agent's jobs; the controller's checks, sync and retention),
 * opened once and shared: users of one repository share its open keys, cache and index files.
 * Each acquire reads the BackupRepository and its Secrets again, so a changed password or
 * credential is used by the next user without restarting the process; the repository opened with
 * the old ones is closed once its last user lets go of it.
 */
import path from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { BackupRepositoryKind, type BackupRepository } from '../kube/api/kinds.ts';
import { httpStatusOf } from '../kube/errors.ts';
import { ResourceClient } from '../kube/resources.ts';
import { openRepository, type Logger, type Repository, type RepositoryOptions } from '../engine/index.ts';
import { RepositoryAccessError } from './errors.ts';
import { repositoryOptionsFor, type RepositorySecrets } from './options.ts';

/** A BackupRepository with its Secrets, read now. */
export interface RepositoryDefinition {
  readonly repository: BackupRepository;
  readonly secrets: RepositorySecrets;
}

/** Where definitions come from: the API server (kubeRepositorySource), or a test's own. */
export type RepositorySource = (name: string) => Promise<RepositoryDefinition>;

export interface AcquiredRepository {
  readonly repo: Repository;
  readonly definition: RepositoryDefinition;
  /** Lets go of it; the last user of a superseded repository closes it. */
  release(): Promise<void>;
}

interface Entry {
  readonly version: string;
  readonly opening: Promise<Repository>;
  users: number;
  superseded: boolean;
}

/** What identifies one set of inputs: a new resourceVersion of any of them means "open again". */
function versionOf({ repository, secrets }: RepositoryDefinition): string {
  return [repository.metadata.resourceVersion, secrets.password.metadata?.resourceVersion, secrets.credentials?.metadata?.resourceVersion].join('/');
}

export class RepositoryPool {
  private readonly entries = new Map<string, Entry>();
  private readonly retired = new Set<Entry>();
  private readonly source: RepositorySource;
  private readonly cacheDir: string;
  private readonly logger: Logger;

  constructor(source: RepositorySource, cacheDir: string, logger: Logger) {
    this.source = source;
    this.cacheDir = cacheDir;
    this.logger = logger;
  }

  async acquire(name: string): Promise<AcquiredRepository> {
    const definition = await this.source(name);
    const version = versionOf(definition);
    let entry = this.entries.get(name);
    if (entry?.version !== version) {
      if (entry !== undefined) this.supersede(name, entry);
      const options = repositoryOptionsFor(definition.repository, definition.secrets, path.join(this.cacheDir, 'repositories'), this.logger.child({ backupRepository: name }));
      entry = { version, opening: openRepository(options).catch((err: unknown) => { throw describeOpenError(definition, err); }), users: 0, superseded: false };
      this.entries.set(name, entry);
    }
    const current = entry;
    current.users++;
    let repo: Repository;
    try {
      repo = await current.opening;
    } catch (err) {
      current.users--;
      // A failed open is not kept: the next job tries again (the Secret may be fixed by then).
      if (this.entries.get(name) === current) this.entries.delete(name);
      throw err;
    }
    let released = false;
    return {
      repo,
      definition,
      release: async () => {
        if (released) return;
        released = true;
        current.users--;
        if (current.superseded && current.users === 0) await this.close(current);
      },
    };
  }

  /** The options that open `name` now (its BackupRepository and Secrets read again), for a user that opens its own instance. */
  async optionsOf(name: string): Promise<RepositoryOptions> {
    const definition = await this.source(name);
    return repositoryOptionsFor(definition.repository, definition.secrets, path.join(this.cacheDir, 'repositories'), this.logger.child({ backupRepository: name }));
  }

  /** Closes every repository (the process is stopping; its users have let go). */
  async closeAll(): Promise<void> {
    const all = [...this.entries.values(), ...this.retired];
    this.entries.clear();
    await Promise.all(all.map((entry) => this.close(entry)));
  }

  private supersede(name: string, entry: Entry): void {
    this.logger.info({ backupRepository: name }, 'the BackupRepository or its Secrets changed; opening the repository again');
    entry.superseded = true;
    this.entries.delete(name);
    if (entry.users === 0) void this.close(entry);
    else this.retired.add(entry);
  }

  private async close(entry: Entry): Promise<void> {
    this.retired.delete(entry);
    const repo = await entry.opening.catch(() => undefined);
    await repo?.close().catch((err: unknown) => {
      this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not close a repository');
    });
  }
}

/** The engine's reasons, in the terms of the objects the user can fix. */
function describeOpenError({ repository }: RepositoryDefinition, err: unknown): Error {
  const name = repository.metadata.name ?? '?';
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ARCA_ERR_WRONG_PASSWORD') {
    const ref = repository.spec.passwordSecretRef;
    return new RepositoryAccessError('WrongPassword', `The password in Secret ${ref.name} (key ${ref.key}) does not open the repository of BackupRepository ${name} (${repository.spec.url}).`, { cause: err });
  }
  if (code === 'ARCA_ERR_REPO_NOT_FOUND') {
    return new RepositoryAccessError('RepositoryNotFound', `There is no Arca repository at ${repository.spec.url} (BackupRepository ${name}); create it with "arca init" or fix spec.url.`, { cause: err });
  }
  return new RepositoryAccessError('CannotOpen', `The repository of BackupRepository ${name} (${repository.spec.url}) cannot be opened: ${message}`, { cause: err });
}

/** Reads BackupRepositories and their Secrets from `namespace` (the controller's, where agent and controller may read Secrets). */
export function kubeRepositorySource(kc: KubeConfig, namespace: string, fieldManager: string): RepositorySource {
  const repositories = new ResourceClient(kc, BackupRepositoryKind, fieldManager);
  const core = kc.makeApiClient(CoreV1Api);
  const notFound = (what: string) => (err: unknown): never => {
    if (httpStatusOf(err) === 404) throw new RepositoryAccessError('MissingObject', `${what} does not exist in namespace ${namespace}.`, { cause: err });
    throw err;
  };
  const secret = (name: string, what: string): Promise<V1Secret> => core.readNamespacedSecret({ namespace, name }).catch(notFound(`Secret ${name} (${what})`));
  return async (name) => {
    const repository = await repositories.get(namespace, name).catch(notFound(`BackupRepository ${name}`));
    const credentialsName = repository.spec.credentialsSecretRef?.name;
    const [password, credentials] = await Promise.all([
      secret(repository.spec.passwordSecretRef.name, `the password of BackupRepository ${name}`),
      credentialsName === undefined ? undefined : secret(credentialsName, `the credentials of BackupRepository ${name}`),
    ]);
    return { repository, secrets: { password, credentials } };
  };
}
