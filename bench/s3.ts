/**
 * Backup and restore throughput of the real CLI on object storage served on this machine:
 * `node bench/s3.ts [MiB] [backends] [runs]`, e.g. `node bench/s3.ts 200 local,s3,azure 3` (the
 * defaults): best of `runs`, each into a fresh repository with a fresh local cache.
 *
 * Generates MiB (default 200) of mixed data — 55 % incompressible files of 2 to 40 MiB, 30 %
 * compressible text, 15 % small files of 4 to 64 KiB in nested directories — then, for each
 * backend, runs `arca init`, `arca backup` and `arca restore` as child processes (as a user
 * would, so the figures include process start-up, key derivation at the tests' fast setting and
 * index loading) and reports MB/s (10^6 bytes of source data per second of wall time).
 *
 * The servers are s3rver and Azurite in their own processes on loopback, on the same 2 cores as
 * the CLI: the figures measure Arca's pipeline plus a local server's overhead, not a network.
 * `local` (a directory) is the baseline without any server.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { arcaOk, summaryOf, tempDir } from '../test/support/cli.ts';
import { startAzurite } from '../test/support/azurite.ts';
import { startS3Server } from '../test/support/s3-server.ts';

const MiB = 1024 * 1024;
const totalMiB = Number(process.argv[2] ?? 200);
const RANDOM_FILE_MIB = [40, 2, 17, 8, 33, 5];
const backends = (process.argv[3] ?? 'local,s3,azure').split(',');
const runs = Number(process.argv[4] ?? 3);

/** Deterministic incompressible bytes: AES-256-CTR keystream under a seed-derived key. */
function randomData(size: number, seed: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(String(seed)).digest(), Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

function textData(size: number, seed: number): Buffer {
  const words = 'volume backup snapshot pod node cluster storage repository chunk index pack blob tree request status ready'.split(' ');
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `${new Date(1_700_000_000_000 + i * 1000 + seed).toISOString()} ${words[(i * 7 + seed) % words.length] ?? ''} ${i} ${words[(i * 13) % words.length] ?? ''} ok\n`;
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

async function makeDataset(root: string): Promise<number> {
  let bytes = 0;
  const put = async (file: string, data: Buffer): Promise<void> => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
    bytes += data.length;
  };
  const randomTarget = Math.round(totalMiB * 0.55 * MiB);
  for (let i = 0, done = 0; done < randomTarget; i++) {
    const size = Math.min(randomTarget - done, (RANDOM_FILE_MIB[i % RANDOM_FILE_MIB.length] ?? 8) * MiB);
    await put(path.join(root, 'media', `blob-${i}.bin`), randomData(size, i));
    done += size;
  }
  const textTarget = Math.round(totalMiB * 0.3 * MiB);
  for (let i = 0, done = 0; done < textTarget; i++) {
    const size = Math.min(textTarget - done, 12 * MiB);
    await put(path.join(root, 'logs', `app-${i}.log`), textData(size, i));
    done += size;
  }
  const smallTarget = Math.round(totalMiB * 0.15 * MiB);
  for (let i = 0, done = 0; done < smallTarget; i++) {
    const size = Math.min(smallTarget - done, 4096 + ((i * 7919) % (60 * 1024)));
    const data = i % 2 === 0 ? randomData(size, 1000 + i) : textData(size, i);
    await put(path.join(root, 'small', `d${i % 17}`, `e${i % 5}`, `f${i}.dat`), data);
    done += size;
  }
  return bytes;
}

interface Figures { readonly backupS: number; readonly restoreS: number; readonly added: number }

async function measureOnce(backend: string, repo: string, env: Record<string, string | undefined>, args: readonly string[], src: string, work: string): Promise<Figures> {
  const run = (cmd: readonly string[]): ReturnType<typeof arcaOk> => arcaOk([...cmd, '--repo', repo, ...args], { env });
  await run(['init']);
  let t = performance.now();
  const summary = summaryOf((await run(['backup', '--json', '--quiet', src])).stdout);
  const backupS = (performance.now() - t) / 1000;
  const target = path.join(work, `restore-${backend}-${repo.replace(/[^a-z0-9]/gi, '-')}`);
  t = performance.now();
  await run(['restore', 'latest', '--target', target, '--quiet']);
  const restoreS = (performance.now() - t) / 1000;
  // A spot check that the restore is real: the first media file's bytes.
  const first = path.join('media', 'blob-0.bin');
  const [a, b] = await Promise.all([readFile(path.join(src, first)), readFile(path.join(target, src, first))]);
  if (!a.equals(b)) throw new Error(`${backend}: restored bytes differ`);
  await rm(target, { recursive: true, force: true });
  return { backupS, restoreS, added: Number(summary.data_added) };
}

/** Best of `runs`, each into a fresh repository (`repoOf(run)`) with a fresh cache. */
async function measure(backend: string, repoOf: (run: number) => string, envOf: (run: number) => Record<string, string | undefined>, args: readonly string[], src: string, work: string, bytes: number): Promise<void> {
  const all: Figures[] = [];
  for (let i = 0; i < runs; i++) all.push(await measureOnce(backend, repoOf(i), envOf(i), args, src, work));
  const backupS = Math.min(...all.map((f) => f.backupS));
  const restoreS = Math.min(...all.map((f) => f.restoreS));
  const mbps = (sec: number): string => (bytes / 1e6 / sec).toFixed(1);
  const each = (pick: (f: Figures) => number): string => all.map((f) => mbps(pick(f))).join(' / ');
  console.log(`${backend.padEnd(6)} backup ${mbps(backupS).padStart(6)} MB/s (${backupS.toFixed(2)} s; runs ${each((f) => f.backupS)})   `
    + `restore ${mbps(restoreS).padStart(6)} MB/s (${restoreS.toFixed(2)} s; runs ${each((f) => f.restoreS)})   stored ${((all[0]?.added ?? 0) / MiB).toFixed(1)} MiB`);
}

const work = await tempDir('arca-bench-s3-');
try {
  const src = path.join(work.dir, 'src');
  const bytes = await makeDataset(src);
  console.log(`dataset: ${(bytes / MiB).toFixed(1)} MiB of mixed data in ${src}`);
  // No AWS profile files or instance metadata; Arca's local cache in the work directory, new for
  // each run, so every restore reads its trees from the storage.
  const noCloudEnv = (backend: string, run: number): Record<string, string> => ({
    AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: path.join(work.dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(work.dir, 'none'),
    XDG_CACHE_HOME: path.join(work.dir, `cache-${backend}-${run}`),
  });
  for (const backend of backends) {
    if (backend === 'local') {
      await measure('local', (run) => path.join(work.dir, `repo-${run}`), (run) => noCloudEnv('local', run), [], src, work.dir, bytes);
    } else if (backend === 's3') {
      const s3 = await startS3Server();
      try {
        await measure('s3', (run) => `s3://${s3.bucket}/bench-${run}`,
          (run) => ({ ...noCloudEnv('s3', run), AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey }), ['--s3-endpoint', s3.endpoint], src, work.dir, bytes);
      } finally {
        await s3.stop();
      }
    } else if (backend === 'azure') {
      const azurite = await startAzurite();
      try {
        await measure('azure', (run) => `azure://${azurite.container}/bench-${run}`,
          (run) => ({ ...noCloudEnv('azure', run), AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }), [], src, work.dir, bytes);
      } finally {
        await azurite.stop();
      }
    } else {
      throw new Error(`unknown backend "${backend}"; use local, s3 or azure`);
    }
  }
} finally {
  await work.cleanup();
}
