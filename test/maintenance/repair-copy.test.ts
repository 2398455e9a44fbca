import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, runArca, startArca, summaryOf, tempDir } from '../support/cli.ts';
import { isolatedCloudEnv } from '../support/cloud-env.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';

/** Chunk IDs of each file directly in `src`, from `arca cat` of the latest snapshot's trees. */
async function fileChunks(repo: string, src: string): Promise<Map<string, string[]>> {
  const snapshot = JSON.parse((await arcaOk(['cat', 'snapshot', 'latest', '--repo', repo])).stdout) as { tree: string };
  let tree = snapshot.tree;
  for (const part of src.split('/').filter(Boolean)) {
    const doc = JSON.parse((await arcaOk(['cat', 'tree', tree, '--repo', repo])).stdout) as { nodes: Array<{ name: string; subtree: string }> };
    tree = doc.nodes.find((n) => n.name === part)?.subtree ?? '';
  }
  const doc = JSON.parse((await arcaOk(['cat', 'tree', tree, '--repo', repo])).stdout) as { nodes: Array<{ name: string; content?: string[] }> };
  return new Map(doc.nodes.map((n) => [n.name, n.content ?? []]));
}

/** Blob ID → pack ID, from every index file; packs holding trees map under "tree:" + pack ID too. */
async function blobPacks(repo: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const name of await readdir(path.join(repo, 'index'))) {
    const doc = JSON.parse((await arcaOk(['cat', 'index', name, '--repo', repo])).stdout) as { packs: Array<{ id: string; blobs: Array<{ id: string; type: string }> }> };
    for (const pack of doc.packs) {
      for (const blob of pack.blobs) {
        map.set(blob.id, pack.id);
        if (blob.type === 'tree') map.set(`tree:${pack.id}`, pack.id);
      }
    }
  }
  return map;
}

describe('repair', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  const files: Record<string, Buffer> = {};
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    await mkdir(src);
    files.big = randomBytes(48 << 20);
    files.small = Buffer.from('small file\n');
    files.other = randomBytes(300_000);
    for (const [name, data] of Object.entries(files)) await writeFile(path.join(src, name), data);
    await arcaOk(['init', '--repo', repo]);
    await arcaOk(['backup', '--repo', repo, src]);
  });
  afterEach(async () => cleanup());

  it('rebuilds lost and damaged index files from the pack headers', async () => {
    const indexes = await readdir(path.join(repo, 'index'));
    await writeFile(path.join(repo, 'index', indexes[0] ?? ''), 'garbage');
    expect((await runArca(['check', '--repo', repo])).code).toBe(1);
    await arcaOk(['repair', 'index', '--repo', repo]);
    await arcaOk(['check', '--repo', repo, '--read-data']);
    for (const name of await readdir(path.join(repo, 'index'))) await rm(path.join(repo, 'index', name));
    await arcaOk(['repair', 'index', '--repo', repo]);
    await arcaOk(['check', '--repo', repo, '--read-data']);
    const target = path.join(dir, 'restore');
    await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify']);
    for (const [name, data] of Object.entries(files)) expect((await readFile(path.join(target, src, name))).equals(data)).toBe(true);
  });

  it('drops only the files whose data is lost, records them, and leaves the rest restorable', async () => {
    // Delete by hand a pack that holds some of big's chunks and none of the other files'.
    const chunksOf = await fileChunks(repo, src);
    const packOf = await blobPacks(repo);
    const others = new Set([...(chunksOf.get('small') ?? []), ...(chunksOf.get('other') ?? [])].map((id) => packOf.get(id)));
    const doomed = (chunksOf.get('big') ?? []).map((id) => packOf.get(id))
      .find((p) => p !== undefined && !others.has(p) && !packOf.has(`tree:${p}`)) ?? '';
    expect(doomed).not.toBe('');
    const biggest = path.join(repo, 'data', doomed.slice(0, 2), doomed);
    await rm(biggest);
    const check = await runArca(['check', '--repo', repo]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain(path.basename(biggest));
    expect(check.stdout).toContain(`${src}/big`);

    // The documented way back: drop the lost pack from the index, then the lost files from the snapshots.
    await arcaOk(['repair', 'index', '--repo', repo]);
    const repaired = await arcaOk(['repair', 'snapshots', '--repo', repo, '--json']);
    const line = JSON.parse(repaired.stdout.trim().split('\n')[0] ?? '{}') as { files_removed: string[] };
    expect(line.files_removed).toEqual([`${src}/big`]);
    await arcaOk(['check', '--repo', repo]);
    const snapshots = JSON.parse((await arcaOk(['snapshots', '--repo', repo, '--json'])).stdout) as Array<{ tags: string[] }>;
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]?.tags).toContain('repaired');
    const target = path.join(dir, 'restore');
    await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify']);
    expect((await readFile(path.join(target, src, 'small'))).equals(files.small ?? Buffer.alloc(0))).toBe(true);
    expect((await readFile(path.join(target, src, 'other'))).equals(files.other ?? Buffer.alloc(0))).toBe(true);
    await expect(readFile(path.join(target, src, 'big'))).rejects.toThrow(/ENOENT/);
  });
});

describe('copy', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let s3: S3Server;
  let proxy: FaultProxy;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    s3 = await startS3Server();
    proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: 0, seed: 1 });
  });
  afterAll(async () => {
    await proxy.stop();
    await s3.stop();
    await cleanup();
  });

  it('copies between repositories with different passwords, deduplicated, resumable', async () => {
    const from = path.join(dir, 'from');
    // The destination is on S3 behind the proxy, so that the copy can be interrupted at a known point.
    const to = [`s3://${s3.bucket}/to`, '--s3-endpoint', proxy.endpoint];
    const src = path.join(dir, 'src');
    await mkdir(src);
    const data = randomBytes(48 << 20);
    await writeFile(path.join(src, 'a'), data);
    await writeFile(path.join(src, 'b'), Buffer.from('bee\n'));
    await arcaOk(['init', '--repo', from]);
    await arcaOk(['backup', '--repo', from, src, '--tag', 'one']);
    await writeFile(path.join(src, 'c'), Buffer.from('sea\n'));
    await arcaOk(['backup', '--repo', from, src, '--tag', 'two']);
    const toEnv = isolatedCloudEnv(dir, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, ARCA_PASSWORD: 'other-password', ARCA_FROM_PASSWORD: 'test-password' });
    await arcaOk(['init', '--repo', ...to], { env: toEnv });

    // Interrupt a first copy while its second index file is on its way: the first is stored (index
    // files are written one after the other, one per pack) and no snapshot can be, as a snapshot
    // waits for every index. The next run finishes it, reusing the indexed pack.
    let indexPuts = 0;
    const secondIndex = proxy.hold((method, url) => method === 'PUT' && url.startsWith(`/${s3.bucket}/to/index/`) && ++indexPuts === 2);
    const child = startArca(['copy', '--repo', ...to, '--from-repo', from], { env: toEnv });
    const killed = new Promise<NodeJS.Signals | null>((resolve) => { child.on('exit', (_code, signal) => { resolve(signal); }); });
    await secondIndex.reached;
    child.kill('SIGKILL');
    expect(await killed).toBe('SIGKILL');
    secondIndex.release();
    const first = summaryOf((await arcaOk(['copy', '--repo', ...to, '--from-repo', from, '--json'], { env: toEnv })).stdout);
    expect(first).toMatchObject({ snapshots_copied: 2, snapshots_skipped: 0 });
    expect(Number(first.data_added)).toBeLessThan(data.length);

    const again = summaryOf((await arcaOk(['copy', '--repo', ...to, '--from-repo', from, '--json'], { env: toEnv })).stdout);
    expect(again).toMatchObject({ snapshots_copied: 0, snapshots_skipped: 2, data_added: 0 });

    await arcaOk(['check', '--repo', ...to, '--read-data'], { env: toEnv });
    const target = path.join(dir, 'restore');
    await arcaOk(['restore', 'latest', '--repo', ...to, '--tag', 'two', '--target', target, '--verify'], { env: toEnv });
    expect((await readFile(path.join(target, src, 'a'))).equals(data)).toBe(true);
    expect(await readFile(path.join(target, src, 'c'), 'utf8')).toBe('sea\n');
    const wrong = await runArca(['copy', '--repo', ...to, '--from-repo', from], { env: { ...toEnv, ARCA_FROM_PASSWORD: 'nope' } });
    expect(wrong.code).toBe(12);
  });
});
