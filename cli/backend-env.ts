import { UsageError } from '../repository/errors.ts';
import type { AzureCredential } from '../repository/storage/azure.ts';
import { schemeOf, type BackendOptions } from '../repository/storage/open.ts';
import { DEFAULT_TIMEOUTS, timeoutsOf, type RequestTimeouts } from '../repository/storage/remote.ts';

/** What the CLI's environment holds: process.env, or a test's own. */
export type Environment = Readonly<Record<string, string | undefined>>;

const S3_HINT = 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE';
const GCS_HINT = 'GOOGLE_HMAC_ACCESS_KEY_ID and GOOGLE_HMAC_SECRET';
const AZURE_HINT = 'AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN';

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** A boolean environment switch: 1/true/yes/on or 0/false/no/off. */
export function envFlag(env: Environment, name: string): boolean | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new UsageError(`${name} must be true or false, not "${raw}".`);
}

/** ARCA_STORAGE_TIMEOUT (seconds): the remote backends' request time limit. */
export function timeoutsFromEnv(env: Environment): RequestTimeouts {
  const raw = nonEmpty(env.ARCA_STORAGE_TIMEOUT);
  if (raw === undefined) return DEFAULT_TIMEOUTS;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`ARCA_STORAGE_TIMEOUT must be a positive number of seconds, not "${raw}".`);
  return timeoutsOf(seconds);
}

/**
 * The backend options for `url` from flags and the environment (docs/storage.md):
 * - s3://: --s3-endpoint or ARCA_S3_ENDPOINT (path-style unless ARCA_S3_PATH_STYLE=false),
 *   AWS_REGION or AWS_DEFAULT_REGION, ARCA_S3_STORAGE_CLASS; credentials from the AWS SDK's chain;
 * - gs://: GOOGLE_HMAC_ACCESS_KEY_ID and GOOGLE_HMAC_SECRET, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY;
 * - azure://: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or
 *   AZURE_STORAGE_SAS_TOKEN; ARCA_AZURE_ENDPOINT replaces https://ACCOUNT.blob.core.windows.net.
 * Only the URL's own scheme's variables are read, so a missing Azure key never fails an S3 run.
 */
export function backendOptionsFromEnv(url: string, env: Environment, flags: { readonly s3Endpoint?: string | undefined } = {}): BackendOptions {
  const timeouts = timeoutsFromEnv(env);
  switch (schemeOf(url)) {
    case 's3':
      return {
        timeouts,
        s3: {
          endpoint: nonEmpty(flags.s3Endpoint) ?? nonEmpty(env.ARCA_S3_ENDPOINT),
          pathStyle: envFlag(env, 'ARCA_S3_PATH_STYLE'),
          region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION),
          storageClass: nonEmpty(env.ARCA_S3_STORAGE_CLASS),
          credentialsHint: S3_HINT,
          timeouts,
        },
      };
    case 'gs': {
      const accessKeyId = nonEmpty(env.GOOGLE_HMAC_ACCESS_KEY_ID) ?? nonEmpty(env.AWS_ACCESS_KEY_ID);
      const secretAccessKey = nonEmpty(env.GOOGLE_HMAC_SECRET) ?? nonEmpty(env.AWS_SECRET_ACCESS_KEY);
      if (accessKeyId === undefined || secretAccessKey === undefined) {
        throw new UsageError(`A gs:// repository needs an HMAC key: set ${GCS_HINT} (see docs/storage.md).`);
      }
      return { timeouts, s3: { credentials: { accessKeyId, secretAccessKey }, storageClass: nonEmpty(env.ARCA_S3_STORAGE_CLASS), credentialsHint: GCS_HINT, timeouts } };
    }
    case 'azure':
      return { timeouts, azure: { credential: azureCredentialFromEnv(env), credentialsHint: AZURE_HINT, timeouts } };
    default:
      return { timeouts };
  }
}

function azureCredentialFromEnv(env: Environment): AzureCredential {
  const connectionString = nonEmpty(env.AZURE_STORAGE_CONNECTION_STRING);
  if (connectionString !== undefined) return { kind: 'connection-string', connectionString };
  const account = nonEmpty(env.AZURE_STORAGE_ACCOUNT);
  const key = nonEmpty(env.AZURE_STORAGE_KEY);
  const sasToken = nonEmpty(env.AZURE_STORAGE_SAS_TOKEN);
  if (account === undefined || (key === undefined && sasToken === undefined)) {
    throw new UsageError(`An azure:// repository needs credentials: set ${AZURE_HINT}.`);
  }
  const endpoint = nonEmpty(env.ARCA_AZURE_ENDPOINT);
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/i.test(endpoint)) throw new UsageError(`ARCA_AZURE_ENDPOINT "${endpoint}" must be an http:// or https:// URL.`);
  return key !== undefined ? { kind: 'shared-key', account, key, endpoint } : { kind: 'sas', account, sasToken: sasToken ?? '', endpoint };
}
