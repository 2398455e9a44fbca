import path from 'node:path';

/**
 * Environment for CLI runs against s3rver or Azurite: keeps the AWS SDK away from the user's
 * profile files and from the instance metadata service (so nothing leaves the machine), drops
 * any repository, endpoint or Azure settings of the caller, and keeps Arca's local cache inside
 * `workDir`. `extra` adds credentials and settings (undefined removes a variable).
 */
export function isolatedCloudEnv(workDir: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    XDG_CACHE_HOME: path.join(workDir, 'cache'),
    AWS_CONFIG_FILE: path.join(workDir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(workDir, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PROFILE: undefined, AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined, AWS_SESSION_TOKEN: undefined,
    AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_WEB_IDENTITY_TOKEN_FILE: undefined, AWS_ROLE_ARN: undefined,
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined, AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
    ARCA_S3_ENDPOINT: undefined, ARCA_S3_STORAGE_CLASS: undefined, ARCA_REPOSITORY: undefined,
    AZURE_STORAGE_CONNECTION_STRING: undefined, AZURE_STORAGE_ACCOUNT: undefined, AZURE_STORAGE_KEY: undefined, AZURE_STORAGE_SAS_TOKEN: undefined,
    ...extra,
  };
}
