import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';
import { startAzurite, type AzuriteServer } from '../support/azurite.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { scanTree } from '../support/fs-tree.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';

/**
 * The real CLI, run as a child process, against repositories on s3rver and Azurite: init, backup,
 * snapshots, restore --verify and check --read-data, with the restored bytes compared.
 */

let work: { dir: string; cleanup: () => Promise<void> };
let s3: S3Server;
let azurite: AzuriteServer;
let src: string;
const cleanups: (() => Promise<void>)[] = [];

/** The isolated environment, with this test's work directory. */
function isolatedAwsEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  return isolatedCloudEnv(work.dir, extra);
}

beforeAll(async () => {
  work = await tempDir('arca-cli-backends-');
  cleanups.push(work.cleanup);
  [s3, azurite] = await Promise.all([startS3Server(), startAzurite()]);
  cleanups.push(s3.stop, azurite.stop);
  // Mixed data: incompressible, compressible, a file spanning two packs, small and empty files.
  src = path.join(work.dir, 'src');
  await mkdir(path.join(src, 'deep', 'er', 'still'), { recursive: true });
  await writeFile(path.join(src, 'random.bin'), randomBytes(20 << 20));
  await writeFile(path.join(src, 'text.log'), Array.from({ length: 60_000 }, (_, i) => `line ${i} of a log that compresses well\n`).join(''));
  await writeFile(path.join(src, 'deep', 'small.txt'), 'hello from deep\n');
  await writeFile(path.join(src, 'deep', 'er', 'empty'), '');
  await writeFile(path.join(src, 'deep', 'er', 'still', 'copy.bin'), (await readFile(path.join(src, 'random.bin'))).subarray(0, 3 << 20));
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function roundTrip(repo: string, env: Record<string, string | undefined>, extraArgs: readonly string[]): Promise<void> {
  const run = (args: readonly string[]): ReturnType<typeof arcaOk> => arcaOk([...args, '--repo', repo, ...extraArgs], { env });
  await run(['init']);
  const first = summaryOf((await run(['backup', '--json', src])).stdout);
  expect(first).toMatchObject({ message_type: 'summary', files_new: 5 });
  const second = summaryOf((await run(['backup', '--json', src])).stdout);
  expect(second).toMatchObject({ files_new: 0, files_unmodified: 5, data_added: expect.any(Number) as number });
  const snapshots = JSON.parse((await run(['snapshots', '--json'])).stdout) as { id: string; paths: string[] }[];
  expect(snapshots).toHaveLength(2);
  expect(snapshots[0]?.paths).toEqual([src]);
  const target = path.join(work.dir, `restore-${repo.replace(/[^a-z0-9]/gi, '-')}`);
  await run(['restore', snapshots[0]?.id ?? 'latest', '--target', target, '--verify']);
  const check = await run(['check', '--read-data']);
  expect(check.stdout).not.toMatch(/^error:/m);
  const [original, restored] = await Promise.all([scanTree(src), scanTree(path.join(target, src))]);
  const contentOf = (scan: Awaited<ReturnType<typeof scanTree>>): Record<string, unknown> =>
    Object.fromEntries([...scan].map(([name, e]) => [name, { type: e.type, size: e.size, sha256: e.sha256 }]));
  expect(contentOf(restored)).toEqual(contentOf(original));
  expect(Object.keys(contentOf(original))).toHaveLength(9);
}

describe('the CLI on object storage', () => {
  it('S3 (s3rver): init, backup twice, snapshots, restore --verify, check --read-data; --s3-endpoint and ARCA_S3_ENDPOINT', async () => {
    const env = isolatedAwsEnv({ AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey });
    await roundTrip(`s3://${s3.bucket}/cli/repo`, env, ['--s3-endpoint', s3.endpoint]);
    // The same repository through the environment variable instead of the flag.
    const listed = JSON.parse((await arcaOk(['snapshots', '--json', '--repo', `s3://${s3.bucket}/cli/repo`], { env: { ...env, ARCA_S3_ENDPOINT: s3.endpoint } })).stdout) as unknown[];
    expect(listed).toHaveLength(2);
  });

  it('Azure (Azurite): init, backup twice, snapshots, restore --verify, check --read-data', async () => {
    await roundTrip(`azure://${azurite.container}/cli/repo`, isolatedAwsEnv({ AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }), []);
  });

  it('says in one line what to do about refused credentials, a missing repository or missing settings', async () => {
    const badKey = await runArca(['snapshots', '--repo', `s3://${s3.bucket}/cli/repo`, '--s3-endpoint', s3.endpoint],
      { env: isolatedAwsEnv({ AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'x' }) });
    expect(badKey.code).toBe(1);
    expect(badKey.stderr.trim().split('\n')).toHaveLength(1);
    expect(badKey.stderr).toMatch(/refused access \((InvalidAccessKeyId|HTTP 403)\); check the credentials/);

    // No credentials anywhere: the SDK's chain finds none (instance metadata is disabled above, so
    // nothing leaves the machine) and the CLI says where to put them.
    const noKey = await runArca(['snapshots', '--repo', `s3://${s3.bucket}/cli/repo`, '--s3-endpoint', s3.endpoint], { env: isolatedAwsEnv({}) });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr.trim().split('\n')).toHaveLength(1);
    expect(noKey.stderr).toMatch(/needs credentials and none were found .*check the credentials \(AWS_ACCESS_KEY_ID/);

    const empty = await runArca(['snapshots', '--repo', `s3://${s3.bucket}/cli/nothing-here`, '--s3-endpoint', s3.endpoint],
      { env: isolatedAwsEnv({ AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey }) });
    expect(empty.code).toBe(10);

    const noAzureCredentials = await runArca(['snapshots', '--repo', `azure://${azurite.container}/cli/repo`], { env: isolatedAwsEnv({}) });
    expect(noAzureCredentials.code).toBe(1);
    expect(noAzureCredentials.stderr).toMatch(/AZURE_STORAGE_CONNECTION_STRING/);

    const badAzureKey = await runArca(['snapshots', '--repo', `azure://${azurite.container}/cli/repo`],
      { env: isolatedAwsEnv({ AZURE_STORAGE_ACCOUNT: azurite.account, AZURE_STORAGE_KEY: Buffer.alloc(64, 1).toString('base64'), ARCA_AZURE_ENDPOINT: azurite.endpoint }) });
    expect(badAzureKey.code).toBe(1);
    expect(badAzureKey.stderr).toMatch(/refused access/);
  });
});
