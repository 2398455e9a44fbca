import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteServer } from '../support/azurite.ts';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';
import { scanTree, type ScannedEntry } from '../support/fs-tree.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';

/**
 * `arca copy` across backends: a local repository to an S3 one (s3rver), and that to an Azure one
 * (Azurite), each repository with its own password. A second copy adds nothing; the last copy
 * restores byte-exactly (content, mode, modification times) and checks clean reading every blob.
 */

const PASSWORDS = { local: 'local-password', s3: 's3-password', azure: 'azure-password' } as const;

let work: { dir: string; cleanup: () => Promise<void> };
let s3: S3Server;
let azurite: AzuriteServer;
let src: string;
let localRepo: string;
let s3Repo: string;
let azureRepo: string;
/** The source as each local snapshot saw it, by tag. */
const states = new Map<string, Map<string, ScannedEntry>>();
/** data_added of the two backups into the local repository. */
let localAdded = 0;
const cleanups: (() => Promise<void>)[] = [];

/** One environment for every run: credentials of both servers, nothing of the caller's. */
function envWith(password: string, fromPassword?: string): Record<string, string | undefined> {
  return isolatedCloudEnv(work.dir, {
    AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
    ARCA_PASSWORD: password, ARCA_FROM_PASSWORD: fromPassword, ARCA_FROM_PASSWORD_FILE: undefined, ARCA_PASSWORD_FILE: undefined,
  });
}

const endpoint = (): string[] => ['--s3-endpoint', s3.endpoint];

beforeAll(async () => {
  work = await tempDir('arca-copy-backends-');
  cleanups.push(work.cleanup);
  [s3, azurite] = await Promise.all([startS3Server(), startAzurite()]);
  cleanups.push(s3.stop, azurite.stop);
  localRepo = path.join(work.dir, 'local-repo');
  s3Repo = `s3://${s3.bucket}/copy/repo`;
  azureRepo = `azure://${azurite.container}/copy/repo`;

  // Incompressible data over several packs, compressible text, a copy inside another file (dedup),
  // small and empty files; the second snapshot changes one file and adds one.
  src = path.join(work.dir, 'src');
  await mkdir(path.join(src, 'deep', 'er'), { recursive: true });
  const random = randomBytes(36 << 20);
  await writeFile(path.join(src, 'random.bin'), random);
  await writeFile(path.join(src, 'text.log'), Array.from({ length: 50_000 }, (_, i) => `line ${i} of a log that compresses well\n`).join(''));
  await writeFile(path.join(src, 'deep', 'part.bin'), random.subarray(5 << 20, 9 << 20));
  await writeFile(path.join(src, 'deep', 'small.txt'), 'hello from deep\n');
  await writeFile(path.join(src, 'deep', 'er', 'empty'), '');
  const localEnv = { ARCA_PASSWORD: PASSWORDS.local };
  await arcaOk(['init', '--repo', localRepo], { env: localEnv });
  localAdded += Number(summaryOf((await arcaOk(['backup', '--json', '--repo', localRepo, '--tag', 'one', src], { env: localEnv })).stdout).data_added);
  states.set('one', await scanTree(src));
  await writeFile(path.join(src, 'deep', 'small.txt'), 'changed\n');
  await writeFile(path.join(src, 'new.bin'), randomBytes(3 << 20));
  localAdded += Number(summaryOf((await arcaOk(['backup', '--json', '--repo', localRepo, '--tag', 'two', src], { env: localEnv })).stdout).data_added);
  states.set('two', await scanTree(src));
}, 180_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface SnapshotJson { id: string; tags: string[]; paths: string[]; time: string; hostname: string; tree: string }

async function snapshotsOf(repo: string, password: string): Promise<SnapshotJson[]> {
  return JSON.parse((await arcaOk(['snapshots', '--json', '--repo', repo, ...endpoint()], { env: envWith(password) })).stdout) as SnapshotJson[];
}

/** What must survive a backup and restore: everything but ownership and the directories' own times. */
function comparable(scan: ReadonlyMap<string, ScannedEntry>): Record<string, unknown> {
  return Object.fromEntries([...scan].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, e]) => [
    name, { type: e.type, mode: e.mode, size: e.size, sha256: e.sha256, mtimeUs: e.type === 'dir' ? undefined : e.mtimeUs },
  ]));
}

describe('copy across backends', () => {
  it('local → S3 → Azure with three passwords; copying again adds nothing; the Azure copy restores byte-exactly and checks clean', { timeout: 240_000 }, async () => {
    await arcaOk(['init', '--repo', s3Repo, ...endpoint()], { env: envWith(PASSWORDS.s3) });
    await arcaOk(['init', '--repo', azureRepo], { env: envWith(PASSWORDS.azure) });

    const copy = async (to: string, toPassword: string, from: string, fromPassword: string): Promise<Record<string, unknown>> =>
      summaryOf((await arcaOk(['copy', '--json', '--repo', to, '--from-repo', from, ...endpoint()], { env: envWith(toPassword, fromPassword) })).stdout);

    const toS3 = await copy(s3Repo, PASSWORDS.s3, localRepo, PASSWORDS.local);
    expect(toS3).toMatchObject({ message_type: 'summary', snapshots_copied: 2, snapshots_skipped: 0 });
    // Each copy stores what the two backups stored, once (trees are sealed anew, so not to the byte).
    expect(Number(toS3.data_added)).toBeGreaterThan(localAdded * 0.99);
    expect(Number(toS3.data_added)).toBeLessThan(localAdded * 1.01);
    const toAzure = await copy(azureRepo, PASSWORDS.azure, s3Repo, PASSWORDS.s3);
    expect(toAzure).toMatchObject({ message_type: 'summary', snapshots_copied: 2, snapshots_skipped: 0 });
    expect(Number(toAzure.data_added)).toBeGreaterThan(localAdded * 0.99);
    expect(Number(toAzure.data_added)).toBeLessThan(localAdded * 1.01);

    expect(await copy(s3Repo, PASSWORDS.s3, localRepo, PASSWORDS.local)).toMatchObject({ snapshots_copied: 0, snapshots_skipped: 2, data_added: 0 });
    expect(await copy(azureRepo, PASSWORDS.azure, s3Repo, PASSWORDS.s3)).toMatchObject({ snapshots_copied: 0, snapshots_skipped: 2, data_added: 0 });

    // The snapshots arrive with their metadata; each repository has its own key.
    const metadataOf = (list: SnapshotJson[]): unknown[] => list.map((s) => ({ tags: s.tags, paths: s.paths, time: s.time, hostname: s.hostname })).sort((a, b) => (a.time < b.time ? -1 : 1));
    const [local, inS3, inAzure] = await Promise.all([
      snapshotsOf(localRepo, PASSWORDS.local), snapshotsOf(s3Repo, PASSWORDS.s3), snapshotsOf(azureRepo, PASSWORDS.azure),
    ]);
    expect(local).toHaveLength(2);
    expect(metadataOf(inS3)).toEqual(metadataOf(local));
    expect(metadataOf(inAzure)).toEqual(metadataOf(local));
    for (const [repo, password] of [[s3Repo, PASSWORDS.local], [azureRepo, PASSWORDS.s3]] as const) {
      const wrong = await runArca(['snapshots', '--repo', repo, ...endpoint()], { env: envWith(password) });
      expect(wrong.code, `${repo} opened with another repository's password`).toBe(12);
    }

    const check = await runArca(['check', '--read-data', '--repo', azureRepo], { env: envWith(PASSWORDS.azure) });
    expect(check.stdout + check.stderr).toMatch(/no errors/);
    expect(check.code).toBe(0);

    for (const tag of ['one', 'two']) {
      const target = path.join(work.dir, `restore-${tag}`);
      await arcaOk(['restore', 'latest', '--tag', tag, '--repo', azureRepo, '--target', target, '--verify'], { env: envWith(PASSWORDS.azure) });
      expect(comparable(await scanTree(path.join(target, src))), `snapshot ${tag}`).toEqual(comparable(states.get(tag) ?? new Map()));
      // And the bytes themselves, not only their hashes, for the file that spans several packs.
      if (tag === 'two') expect((await readFile(path.join(target, src, 'random.bin'))).equals(await readFile(path.join(src, 'random.bin')))).toBe(true);
      await rm(target, { recursive: true, force: true });
    }
  });
});
