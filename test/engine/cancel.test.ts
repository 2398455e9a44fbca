import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume, initRepository, openRepository, restoreSnapshot, type RepositoryOptions } from '../../engine/index.ts';
import { tempDir } from '../support/cli.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { pseudoRandom, SMALL_REPO } from '../storage-wrappers/helpers.ts';
import { countFiles, expectCheckClean, leaseNames, until, writeFiles } from './helpers.ts';

/**
 * A backup or restore cancelled at several moments ends with the "canceled" outcome before its
 * work could have finished, leaves a repository that checks clean and no lease, and the next
 * backup completes, reusing what the cancelled one stored.
 */
describe('cancelling through the door', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => { temp = await tempDir('arca-cancel-'); });
  afterAll(async () => { await temp.cleanup(); });

  async function localRepository(name: string): Promise<RepositoryOptions> {
    const options: RepositoryOptions = { url: path.join(temp.dir, name), password: `pw-${name}` };
    await initRepository({ ...options, config: SMALL_REPO, kdf: { fixedN: 1024 } });
    return options;
  }

  it('stops during the walk of many small files', async () => {
    const options = await localRepository('walk');
    const source = path.join(temp.dir, 'many-small');
    const files = 4000;
    await writeFiles(source, 400, files, 200, 'small', pseudoRandom);
    const repo = await openRepository(options);
    const controller = new AbortController();
    // The walk begins once the lease is written and the index read: cancel just after.
    void until(async () => await countFiles(path.join(options.url, 'leases'), /./) > 0).then(() => { setTimeout(() => { controller.abort(); }, 20); });
    const outcome = await backupVolume(repo, source, { signal: controller.signal, workers: 1 });
    expect(outcome.status).toBe('canceled');
    if (outcome.status !== 'canceled') return;
    expect(outcome.filesProcessed).toBeLessThan(files);
    expect(await repo.listSnapshots()).toEqual([]);
    await repo.close();
    expect(await leaseNames(options)).toEqual([]);
    await expectCheckClean(options);
    const next = await backupVolume(await openRepository(options), source, { workers: 1 });
    expect(next.status).toBe('completed');
    if (next.status === 'completed') expect(next.summary.total_files_processed).toBe(files);
  });

  it('stops mid-pack, indexes the packs it stored, and the next backup reuses them', async () => {
    const options = await localRepository('mid-pack');
    const source = path.join(temp.dir, 'large');
    const total = await writeFiles(source, 2, 12, 2 << 20, 'large', pseudoRandom);
    const repo = await openRepository(options);
    const controller = new AbortController();
    // Packs are 128 KiB here: cancel once twenty are stored, with many more to come.
    void until(async () => await countFiles(path.join(options.url, 'data'), /^[0-9a-f]{64}$/) >= 20).then(() => { controller.abort(); });
    const outcome = await backupVolume(repo, source, { signal: controller.signal, workers: 1 });
    expect(outcome.status).toBe('canceled');
    if (outcome.status !== 'canceled') return;
    expect(outcome.bytesProcessed).toBeLessThan(total);
    await repo.close();
    expect(await leaseNames(options)).toEqual([]);
    await expectCheckClean(options);
    const next = await backupVolume(await openRepository(options), source, { workers: 1 });
    if (next.status !== 'completed') throw new Error(next.status);
    // At least the twenty packs (2.5 MiB) seen before the cancel are reused.
    expect(next.summary.data_added).toBeLessThan(total - 2 * (1 << 20));
  });

  describe('against S3 through a proxy that holds every request back', () => {
    let server: S3Server;
    let proxy: FaultProxy;
    let direct: RepositoryOptions;
    let slow: RepositoryOptions;
    let total = 0;
    const source = (): string => path.join(temp.dir, 's3-source');

    beforeAll(async () => {
      server = await startS3Server();
      proxy = await startFaultProxy({ upstream: server.endpoint, faultRate: 1, seed: 7, kinds: ['delay'] });
      const s3 = (endpoint: string): RepositoryOptions['backend'] => ({ s3: { endpoint, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } } });
      direct = { url: `s3://${server.bucket}/slow`, password: 'pw-s3', backend: s3(server.endpoint) };
      slow = { ...direct, backend: s3(proxy.endpoint) };
      await initRepository({ ...direct, config: SMALL_REPO, kdf: { fixedN: 1024 } });
      total = await writeFiles(source(), 3, 12, 512 << 10, 's3', pseudoRandom);
    });
    afterAll(async () => {
      await proxy.stop();
      await server.stop();
    });

    it('stops during pack uploads, and the next backup reuses the packs that were stored', async () => {
      const repo = await openRepository(slow);
      const controller = new AbortController();
      const before = proxy.stats().requests;
      // Every request waits 100-800 ms: cancel with uploads in flight and most still to come.
      void until(() => proxy.stats().requests - before >= 25).then(() => { controller.abort(); });
      const outcome = await backupVolume(repo, source(), { signal: controller.signal, workers: 1 });
      expect(outcome.status).toBe('canceled');
      if (outcome.status !== 'canceled') return;
      expect(await repo.listSnapshots()).toEqual([]);
      await repo.close();
      expect(await leaseNames(direct)).toEqual([]);
      await expectCheckClean(direct);
      const next = await backupVolume(await openRepository(direct), source(), { workers: 1 });
      if (next.status !== 'completed') throw new Error(next.status);
      expect(next.summary.data_added).toBeLessThan(total);
    });

    it('stops a restore while it fetches data', async () => {
      const repo = await openRepository(slow);
      const target = path.join(temp.dir, 's3-restore');
      const controller = new AbortController();
      // Files are made first, their content written as ranges arrive: cancel once the files exist.
      void until(async () => await countFiles(target, /^f\d+$/) > 0).then(() => { controller.abort(); });
      const outcome = await restoreSnapshot(repo, 'latest', target, { signal: controller.signal, workers: 1 });
      expect(outcome.status).toBe('canceled');
      if (outcome.status !== 'canceled') return;
      expect(outcome.summary?.bytes_restored ?? 0).toBeLessThan(total);
      await repo.close();
      await expectCheckClean(direct);
      const again = await restoreSnapshot(await openRepository(direct), 'latest', target, { workers: 1, verify: true });
      if (again.status !== 'completed') throw new Error(again.status);
      expect(again.summary.errors).toBe(0);
      expect(again.summary.bytes_restored).toBe(total);
    });
  });
});
