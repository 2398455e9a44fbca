import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume, initRepository, openRepository, restoreSnapshot, type RepositoryOptions } from '../../engine/index.ts';
import { WrongPasswordError } from '../../repository/errors.ts';
import { StorageAuthError } from '../../repository/storage/storage.ts';
import { tempDir } from '../support/cli.ts';
import { scanTree } from '../support/fs-tree.ts';
import { MemoryLogger } from '../support/memory-logger.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { pseudoRandom, SMALL_REPO } from '../storage-wrappers/helpers.ts';
import { expectCheckClean, leaseNames, writeFiles } from './helpers.ts';

/**
 * The door as the agent will use it: one process, two repositories with their own credentials
 * and passwords (as from two Secrets), two backups at once. Nothing comes from the environment.
 */
describe('two S3 repositories in one process', () => {
  let server: S3Server;
  let temp: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    server = await startS3Server();
    temp = await tempDir('arca-door-');
  });
  afterAll(async () => {
    await server.stop();
    await temp.cleanup();
  });

  function optionsFor(prefix: string, secret: string, password: string, logger: MemoryLogger): RepositoryOptions {
    return {
      url: `s3://${server.bucket}/${prefix}`,
      password,
      backend: { s3: { endpoint: server.endpoint, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: secret } } },
      cacheDir: path.join(temp.dir, 'cache'),
      logger,
    };
  }

  it('backs up two volumes at once into repositories with different credentials and passwords, and restores each', async () => {
    const logger = new MemoryLogger();
    const a = optionsFor('cluster-a', 'secret-of-a', 'password-a', logger);
    const b = optionsFor('cluster-b', 'secret-of-b', 'password-b', logger);
    await Promise.all([a, b].map((o) => initRepository({ ...o, config: SMALL_REPO, kdf: { fixedN: 1024 } })));
    const volumeA = path.join(temp.dir, 'pods', 'uid-a', 'volumes', 'data');
    const volumeB = path.join(temp.dir, 'pods', 'uid-b', 'volumes', 'www');
    await writeFiles(volumeA, 4, 40, 20_000, 'a', pseudoRandom);
    await writeFiles(volumeB, 3, 30, 30_000, 'b', pseudoRandom);
    const [repoA, repoB] = await Promise.all([openRepository(a), openRepository(b)]);
    try {
      const labelsA = { namespace: 'shop', pod: 'db-0', volume: 'data', pvc: 'data-db-0' };
      const labelsB = { namespace: 'blog', pod: 'wp-1', volume: 'www', pvc: 'www-wp' };
      const [outA, outB] = await Promise.all([
        backupVolume(repoA, volumeA, { labels: labelsA, workers: 1, logger }),
        backupVolume(repoB, volumeB, { labels: labelsB, workers: 1, logger }),
      ]);
      if (outA.status !== 'completed' || outB.status !== 'completed') throw new Error(`a backup did not complete: ${outA.status}, ${outB.status}`);
      expect(outA.summary.files_new).toBe(40);
      expect(outB.summary.files_new).toBe(30);
      expect(outA.snapshot.labels).toEqual(labelsA);
      // Each repository holds its own snapshot only.
      expect((await repoA.listSnapshots()).map((s) => s.id)).toEqual([outA.snapshotId]);
      expect((await repoB.listSnapshots()).map((s) => s.id)).toEqual([outB.snapshotId]);

      // The agent's parent choice: the latest snapshot with the volume's labels, whatever its path.
      const again = await backupVolume(repoA, volumeA, { labels: labelsA, parent: { kind: 'latest', filter: { labels: { pvc: 'data-db-0' } }, samePaths: false }, workers: 1 });
      if (again.status !== 'completed') throw new Error(again.status);
      expect(again.snapshot.parent).toBe(outA.snapshotId);
      expect(again.summary.files_unmodified).toBe(40);

      const [restA, restB] = await Promise.all([
        restoreSnapshot(repoA, 'latest', path.join(temp.dir, 'restore-a'), { filter: { labels: { volume: 'data' } }, workers: 1 }),
        restoreSnapshot(repoB, outB.snapshotId, path.join(temp.dir, 'restore-b'), { workers: 1, verify: true }),
      ]);
      expect(restA.status).toBe('completed');
      expect(restB.status).toBe('completed');
      expect(await scanTree(path.join(temp.dir, 'restore-a', volumeA))).toEqual(await scanTree(volumeA));
      expect(await scanTree(path.join(temp.dir, 'restore-b', volumeB))).toEqual(await scanTree(volumeB));
    } finally {
      await Promise.all([repoA.close(), repoB.close()]);
    }

    // The passwords and credentials are per repository: A's password does not open B, and a key
    // the server does not know is refused for one repository while the other is unaffected.
    await expect(openRepository({ ...b, password: 'password-a' })).rejects.toBeInstanceOf(WrongPasswordError);
    await expect(openRepository({ ...a, cacheDir: undefined, backend: { s3: { endpoint: server.endpoint, credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'x' } } } }))
      .rejects.toBeInstanceOf(StorageAuthError);
    expect(await leaseNames(a)).toEqual([]);
    expect(await leaseNames(b)).toEqual([]);
    await expectCheckClean({ ...a, cacheDir: undefined });
    await expectCheckClean({ ...b, cacheDir: undefined });
    expect(logger.warnings()).toEqual([]);
    await fsp.rm(path.join(temp.dir, 'pods'), { recursive: true });
  });
});
