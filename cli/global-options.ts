import type { OptionSpecs } from './command.ts';

/** Options every command takes, before or after the command's name. */
export const GLOBAL_OPTIONS: OptionSpecs = {
  repo: {
    type: 'string', short: 'r', value: 'URL', complete: 'dir',
    description: 'the repository: a path, file:///path, s3://bucket/prefix, gs://bucket/prefix or azure://container/prefix (else ARCA_REPOSITORY)',
  },
  'password-file': {
    type: 'string', value: 'FILE', complete: 'file',
    description: 'read the password from the first line of FILE (else ARCA_PASSWORD_FILE, then ARCA_PASSWORD, then a prompt on a terminal)',
  },
  json: { type: 'boolean', description: 'print JSON instead of text (see "JSON output" in docs/cli.md)' },
  quiet: { type: 'boolean', short: 'q', description: 'print no progress and no summary, only errors' },
  verbose: { type: 'boolean', short: 'v', description: 'print more detail, such as the stack of an unexpected error' },
  'cache-dir': { type: 'string', value: 'DIR', complete: 'dir', description: 'keep the local cache in DIR (default $XDG_CACHE_HOME/arca or ~/.cache/arca)' },
  'no-cache': { type: 'boolean', description: 'use no local cache: read everything from the repository' },
  's3-endpoint': { type: 'string', value: 'URL', description: 'an S3-compatible server for s3:// repositories, such as MinIO or Ceph (else ARCA_S3_ENDPOINT)' },
};
