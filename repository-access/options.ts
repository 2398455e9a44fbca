/**
 * A BackupRepository and its Secrets as the engine's RepositoryOptions: the password from the key
 * `passwordSecretRef` names, the storage credentials from the keys of `credentialsSecretRef`
 * (named as the CLI's environment variables, so one Secret serves both), the backend options from
 * the spec. Nothing is read from the process's own environment: each repository has its own.
 */
import type { V1Secret } from '@kubernetes/client-node';
import type { BackupRepository } from '../kube/api/kinds.ts';
import type { AzureCredential, BackendOptions, Logger, RepositoryOptions } from '../engine/index.ts';
import { RepositoryAccessError } from './errors.ts';

/** The Secrets a BackupRepository refers to, as read from the controller namespace. */
export interface RepositorySecrets {
  readonly password: V1Secret;
  readonly credentials?: V1Secret | undefined;
}

function secretValue(secret: V1Secret | undefined, key: string): string | undefined {
  const encoded = secret?.data?.[key];
  const value = encoded === undefined ? secret?.stringData?.[key] : Buffer.from(encoded, 'base64').toString('utf8');
  return value === undefined || value === '' ? undefined : value;
}

export function repositoryOptionsFor(repo: BackupRepository, secrets: RepositorySecrets, cacheDir: string, logger: Logger): RepositoryOptions {
  const name = repo.metadata.name ?? '?';
  const ref = repo.spec.passwordSecretRef;
  const password = secretValue(secrets.password, ref.key);
  if (password === undefined) {
    throw new RepositoryAccessError('BadSecret', `BackupRepository ${name}: Secret ${ref.name} has no key "${ref.key}" holding the repository password.`);
  }
  return { url: repo.spec.url, password, backend: backendOptionsFor(repo, secrets.credentials), cacheDir, logger };
}

function backendOptionsFor(repo: BackupRepository, credentials: V1Secret | undefined): BackendOptions {
  const url = repo.spec.url;
  const secretName = repo.spec.credentialsSecretRef?.name;
  const get = (key: string): string | undefined => secretValue(credentials, key);
  const hint = (keys: string): string => `keys ${keys} of Secret ${secretName ?? '(none: set credentialsSecretRef)'}`;
  if (url.startsWith('s3://') || url.startsWith('gs://')) {
    const gs = url.startsWith('gs://');
    const accessKeyId = (gs ? get('GOOGLE_HMAC_ACCESS_KEY_ID') : undefined) ?? get('AWS_ACCESS_KEY_ID');
    const secretAccessKey = (gs ? get('GOOGLE_HMAC_SECRET') : undefined) ?? get('AWS_SECRET_ACCESS_KEY');
    if (gs && (accessKeyId === undefined || secretAccessKey === undefined)) {
      throw new RepositoryAccessError('BadSecret', `BackupRepository ${repo.metadata.name ?? '?'}: a gs:// repository needs an HMAC key in ${hint('GOOGLE_HMAC_ACCESS_KEY_ID and GOOGLE_HMAC_SECRET')}.`);
    }
    const sessionToken = get('AWS_SESSION_TOKEN');
    return {
      s3: {
        endpoint: repo.spec.s3?.endpoint,
        region: repo.spec.s3?.region ?? get('AWS_REGION'),
        pathStyle: repo.spec.s3?.forcePathStyle,
        // Without keys the AWS SDK's own chain is used (an IAM role of the node or service account).
        credentials: accessKeyId !== undefined && secretAccessKey !== undefined
          ? { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) }
          : undefined,
        credentialsHint: hint(gs ? 'GOOGLE_HMAC_ACCESS_KEY_ID and GOOGLE_HMAC_SECRET' : 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'),
      },
    };
  }
  if (url.startsWith('azure://')) return { azure: { credential: azureCredential(repo, get, hint), credentialsHint: hint('AZURE_STORAGE_CONNECTION_STRING') } };
  return {};
}

function azureCredential(repo: BackupRepository, get: (key: string) => string | undefined, hint: (keys: string) => string): AzureCredential {
  const connectionString = get('AZURE_STORAGE_CONNECTION_STRING');
  if (connectionString !== undefined) return { kind: 'connection-string', connectionString };
  const account = get('AZURE_STORAGE_ACCOUNT');
  const key = get('AZURE_STORAGE_KEY');
  const sasToken = get('AZURE_STORAGE_SAS_TOKEN');
  if (account === undefined || (key === undefined && sasToken === undefined)) {
    throw new RepositoryAccessError('BadSecret', `BackupRepository ${repo.metadata.name ?? '?'}: an azure:// repository needs ${hint('AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN')}.`);
  }
  const endpoint = get('ARCA_AZURE_ENDPOINT') ?? `https://${account}.blob.core.windows.net`;
  return key !== undefined ? { kind: 'shared-key', account, key, endpoint } : { kind: 'sas', account, sasToken: sasToken ?? '', endpoint };
}
