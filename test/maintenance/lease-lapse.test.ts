import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packName } from '../../repository/object-names.ts';
import { Repository } from '../../repository/repository.ts';
import { S3Storage, s3ConfigFromUrl } from '../../repository/storage/s3.ts';
import { arcaOk, runArca, startArca, summaryOf, tempDir, type RunResult } from '../support/cli.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { leaseTtl } from '../support/lease-ttl.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { stderrProblems } from '../robustness/helpers.ts';

/**
 * A backup, a copy and a repair whose lease lapses in the middle of the run: each is held at a
 * known point of its work (a pack upload or a pack read, held by the proxy in front of s3rver),
 * stopped with SIGSTOP for longer than the lease lifetime, its stale lease revoked meanwhile (as a
 * prune does before it lists anything: `arca leases remove --stale`), continued, and let go. Each
 * must refuse to write its snapshot and exit 11, and leave the repository as valid as it found it:
 * a prune may have removed data it relied on once its lease was revoked. (A stall that nobody
 * revoked is harmless: no prune can have acted on the lease, so the run may finish.)
 */

const TTL_MS = 2_000;
/** Past the lifetime and the clock-skew allowance a prune adds to it (half the lifetime). */
const PAUSE_MS = 2 * TTL_MS;
const LEASE_LAPSED = 11;
const MiB = 1 << 20;

interface Snap { readonly id: string }

describe('a run whose lease lapses midway writes no snapshot and exits 11', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let s3: S3Server;
  let proxy: FaultProxy;
  let env: Record<string, string | undefined>;
  let src: string;
  const ttl = leaseTtl(TTL_MS);

  const url = (name: string): string => `s3://${s3.bucket}/${name}`;
  const repoArgs = (name: string): string[] => ['--repo', url(name), '--s3-endpoint', proxy.endpoint, ...ttl.args];
  const arca = (args: readonly string[]): Promise<RunResult> => runArca(args, { env });
  const snapshotIds = async (name: string): Promise<string[]> => {
    const out = (await arcaOk(['snapshots', '--json', ...repoArgs(name)], { env })).stdout;
    return (JSON.parse(out) as Snap[]).map((s) => s.id).sort();
  };
  /** A request for an object under data/ of repository `name`. */
  const dataRequest = (method: string, name: string) => (m: string, u: string): boolean => m === method && u.startsWith(`/${s3.bucket}/${name}/data/`);

  beforeAll(async () => {
    work = await tempDir('arca-lease-lapse-');
    s3 = await startS3Server();
    proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: 0, seed: 1 });
    env = isolatedCloudEnv(work.dir, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, ARCA_FROM_PASSWORD: 'test-password', ...ttl.env });
    src = path.join(work.dir, 'src');
    await mkdir(src);
    // Several packs of incompressible data, and a small file.
    await writeFile(path.join(src, 'big.bin'), randomBytes(40 * MiB));
    await writeFile(path.join(src, 'small.txt'), 'small\n');
  });
  afterAll(async () => {
    await proxy.stop();
    await s3.stop();
    await work.cleanup();
  });

  /**
   * Runs `arca ARGS` until the proxy holds the request `held` chooses, stops the process for
   * PAUSE_MS, revokes its then stale lease in repository `name`, continues it and lets the request
   * go; returns how the run ended.
   */
  async function pausedPastLease(args: readonly string[], name: string, held: (method: string, url: string) => boolean): Promise<RunResult> {
    const hold = proxy.hold(held);
    const child = startArca(args, { env });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const ended = new Promise<RunResult>((resolve) => {
      child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); });
    });
    await Promise.race([hold.reached, ended.then((r) => { throw new Error(`arca ${args[0] ?? ''} exited ${String(r.code)} before the held request: ${r.stderr}`); })]);
    child.kill('SIGSTOP');
    await sleep(PAUSE_MS);
    const revoked = await arca(['leases', 'remove', '--stale', ...repoArgs(name)]);
    expect(revoked.code, revoked.stderr).toBe(0);
    child.kill('SIGCONT');
    hold.release();
    return ended;
  }

  function expectLapsed(run: RunResult): void {
    expect(run.code, run.stderr).toBe(LEASE_LAPSED);
    expect(run.stderr).toMatch(/lost its lease .* run the command again/);
    expect(stderrProblems(run.stderr)).toEqual([]);
  }

  async function expectChecksClean(name: string): Promise<void> {
    const check = await arca(['check', '--read-data', ...repoArgs(name)]);
    expect(check.stdout, check.stderr).toMatch(/no errors/);
    expect(check.code).toBe(0);
  }

  it('backup', async () => {
    await arcaOk(['init', ...repoArgs('backup')], { env });
    await arcaOk(['backup', ...repoArgs('backup'), src], { env });
    const before = await snapshotIds('backup');
    await writeFile(path.join(src, 'new.bin'), randomBytes(20 * MiB));

    expectLapsed(await pausedPastLease(['backup', ...repoArgs('backup'), src], 'backup', dataRequest('PUT', 'backup')));
    expect(await snapshotIds('backup')).toEqual(before);
    await expectChecksClean('backup');
    // Run again, it completes.
    await arcaOk(['backup', ...repoArgs('backup'), src], { env });
    expect(await snapshotIds('backup')).toHaveLength(2);
  });

  it('copy', async () => {
    await arcaOk(['init', ...repoArgs('copy-from')], { env });
    await arcaOk(['backup', ...repoArgs('copy-from'), src], { env });
    await arcaOk(['init', ...repoArgs('copy-to')], { env });
    const copy = ['copy', ...repoArgs('copy-to'), '--from-repo', url('copy-from')];

    expectLapsed(await pausedPastLease(copy, 'copy-to', dataRequest('GET', 'copy-from')));
    expect(await snapshotIds('copy-to')).toEqual([]);
    await expectChecksClean('copy-to');
    const again = summaryOf((await arcaOk([...copy, '--json'], { env })).stdout);
    expect(again).toMatchObject({ snapshots_copied: 1 });
  });

  it('repair snapshots', async () => {
    await arcaOk(['init', ...repoArgs('repair')], { env });
    await arcaOk(['backup', ...repoArgs('repair'), src], { env });
    // Lose a pack of big.bin's data that holds no tree.
    const storage = new S3Storage({
      ...s3ConfigFromUrl(url('repair'), { endpoint: s3.endpoint }),
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    const repo = await Repository.open(storage, Buffer.from('test-password'));
    await repo.loadIndex();
    const treePacks = new Set([...repo.index.entries()].filter(([, loc]) => loc.type === 'tree').map(([, loc]) => loc.packId.toString('hex')));
    const lost = repo.index.packIds().map((p) => p.toString('hex')).find((p) => !treePacks.has(p));
    if (lost === undefined) throw new Error('every pack holds a tree');
    await storage.delete(packName(lost));
    const damaged = await arca(['check', '--json', ...repoArgs('repair')]);
    expect(damaged.code).toBe(1);
    const before = await snapshotIds('repair');

    expectLapsed(await pausedPastLease(['repair', 'snapshots', ...repoArgs('repair')], 'repair', dataRequest('GET', 'repair')));
    // Nothing changed: the same snapshot, the same damage.
    expect(await snapshotIds('repair')).toEqual(before);
    const after = await arca(['check', '--json', ...repoArgs('repair')]);
    expect(after.code).toBe(1);
    expect(summaryOf(after.stdout).problems).toEqual(summaryOf(damaged.stdout).problems);
    // Run again, it repairs; with the lost pack dropped from the index, the repository checks clean.
    await arcaOk(['repair', 'snapshots', ...repoArgs('repair')], { env });
    expect(await snapshotIds('repair')).not.toEqual(before);
    await arcaOk(['repair', 'index', ...repoArgs('repair')], { env });
    await expectChecksClean('repair');
  });
});
