import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArca, summaryOf, tempDir } from '../support/cli.ts';
import { cliEnv, treeDifferences } from './helpers.ts';

const run = promisify(execFile);

/** Runs a bash script; its stdout, or a failure with its stderr. */
async function shell(script: string): Promise<string> {
  return (await run('bash', ['-c', `set -o pipefail; ${script}`], { maxBuffer: 16 << 20 })).stdout;
}

/** Trees a tenant can make to hide data from a backup or to stall it: deep, huge, growing. */
describe('hostile trees', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  const env = (): Record<string, string> => cliEnv(path.join(base, 'cache'));
  const arca = (...args: string[]): ReturnType<typeof runArca> => runArca(args, { env: env() });

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-hostile-'));
    repo = path.join(base, 'repo');
    expect((await arca('init', '--repo', repo)).code).toBe(0);
  });
  afterAll(async () => cleanup());

  it('a tree 400 levels deep with 40-byte names (16 KiB of path) backs up and restores exactly', async () => {
    const src = path.join(base, 'deep');
    await fsp.mkdir(src);
    // Made level by level through a relative working path: the whole path is past PATH_MAX.
    let rel = '';
    const names: string[] = [];
    for (let level = 0; level < 400; level++) {
      const name = `level-${String(level).padStart(3, '0')}-${'n'.repeat(30)}`;
      expect(Buffer.byteLength(name)).toBe(40);
      names.push(name);
      rel = rel === '' ? name : `${rel}/${name}`;
    }
    await shell(`cd ${JSON.stringify(src)} && for n in ${names.join(' ')}; do mkdir "$n" && echo "data at $n" > "$n.txt" && cd "$n"; done && echo bottom > bottom.txt`);
    const backup = await arca('backup', '--repo', repo, '--json', src);
    expect(backup.code, backup.stderr.slice(0, 1000)).toBe(0);
    expect(summaryOf(backup.stdout)).toMatchObject({ total_files_processed: 401, dirs_new: expect.any(Number) as number, files_unreadable: 0 });
    const target = path.join(base, 'deep-target');
    const restore = await arca('restore', 'latest', '--repo', repo, '--target', target, '--json', '--verify');
    expect(restore.code, restore.stderr.slice(0, 1000)).toBe(0);
    expect(summaryOf(restore.stdout)).toMatchObject({ files_restored: 401, files_verified: 401, errors: 0 });
    // Compared as tar streams sorted by name (tar walks by relative paths), then removed the same way.
    const tarHash = (dir: string): Promise<string> => shell(`tar --sort=name -C ${JSON.stringify(dir)} -cf - . | sha256sum`);
    expect(await tarHash(path.join(target, src))).toBe(await tarHash(src));
    await shell(`rm -rf ${JSON.stringify(src)} ${JSON.stringify(target)}`);
  });

  it('a file of huge apparent size with no data (1 PiB where the file system allows) costs no reading, and restores as a hole of that size', async () => {
    // tmpfs takes 1 PiB files; ext4 stops at 16 TiB.
    const where = existsSync('/dev/shm') ? await fsp.mkdtemp('/dev/shm/arca-sparse-') : base;
    try {
      const src = path.join(where, 'src');
      await fsp.mkdir(src);
      const file = path.join(src, 'huge.img');
      let size = 2n ** 50n;
      const handle = await fsp.open(file, 'w');
      try {
        await handle.truncate(Number(size)).catch(async () => {
          size = 8n * 2n ** 40n;
          await handle.truncate(Number(size));
        });
      } finally {
        await handle.close();
      }
      const backup = await arca('backup', '--repo', repo, '--json', src);
      expect(backup.code, backup.stderr).toBe(0);
      expect(summaryOf(backup.stdout)).toMatchObject({ total_bytes_processed: Number(size), data_blobs: 0 });
      const target = path.join(where, 'target');
      const restore = await arca('restore', 'latest', '--repo', repo, '--target', target, '--json');
      expect(restore.code, restore.stderr).toBe(0);
      const st = await fsp.stat(path.join(target, file), { bigint: true });
      expect(st.size).toBe(size);
      expect(st.blocks).toBe(0n);
    } finally {
      if (where !== base) await fsp.rm(where, { recursive: true, force: true });
    }
  });

  it('a file growing while it is read is cut at the size seen, and what is stored is what it held', async () => {
    const src = path.join(base, 'growing');
    await fsp.mkdir(src);
    const file = path.join(src, 'log');
    await fsp.writeFile(file, 'start\n'.repeat(100_000));
    const stop = path.join(base, 'stop-growing');
    // Appends 64 KiB every 5 ms until told to stop (or for 60 s at most).
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('node:fs'); const fd = fs.openSync(${JSON.stringify(file)}, 'a'); const chunk = Buffer.alloc(65536, 'g');
      const nap = new Int32Array(new SharedArrayBuffer(4)); const until = Date.now() + 60000;
      while (!fs.existsSync(${JSON.stringify(stop)}) && Date.now() < until) { fs.writeSync(fd, chunk); Atomics.wait(nap, 0, 0, 5); }`], { stdio: 'inherit' });
    const exited = new Promise<void>((resolve) => writer.on('close', () => { resolve(); }));
    let backup;
    try {
      backup = await arca('backup', '--repo', repo, '--json', src);
    } finally {
      await fsp.writeFile(stop, '');
      await exited;
    }
    expect(backup.code, backup.stderr).toBe(0);
    const target = path.join(base, 'growing-target');
    expect((await arca('restore', 'latest', '--repo', repo, '--target', target)).code).toBe(0);
    const stored = await fsp.readFile(path.join(target, file));
    const now = await fsp.stat(file);
    expect(stored.length).toBeGreaterThanOrEqual(600_000);
    expect(stored.length).toBeLessThan(now.size);
    const prefix = Buffer.alloc(stored.length);
    const handle = await fsp.open(file, 'r');
    try {
      await handle.read(prefix, 0, prefix.length, 0);
    } finally {
      await handle.close();
    }
    expect(prefix.equals(stored)).toBe(true);
  });

  it('FIFOs, a socket and a device back up without blocking, next to files that round-trip', async () => {
    const src = path.join(base, 'special');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'plain.txt'), 'plain\n');
    const made = await new Promise<number | null>((resolve) => {
      spawn('bash', ['-c', `mkfifo ${src}/fifo && mknod ${src}/null c 1 3`], { stdio: 'inherit' }).on('close', resolve);
    });
    expect(made).toBe(0);
    const net = await import('node:net');
    const server = net.createServer().listen(path.join(src, 'sock'));
    try {
      const backup = await arca('backup', '--repo', repo, '--json', src);
      expect(backup.code, backup.stderr).toBe(0);
    } finally {
      server.close();
    }
    const target = path.join(base, 'special-target');
    expect((await arca('restore', 'latest', '--repo', repo, '--target', target)).code).toBe(0);
    expect((await fsp.lstat(path.join(target, src, 'fifo'))).isFIFO()).toBe(true);
    expect((await fsp.lstat(path.join(target, src, 'null'))).isCharacterDevice()).toBe(true);
    expect(await treeDifferences(path.join(src), path.join(target, src)).then((d) => d.filter((l) => !/sock|fifo|null/.test(l)))).toEqual([]);
  });
});
