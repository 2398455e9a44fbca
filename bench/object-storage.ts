/**
 * The object-storage and copy table of issue 15, with s3rver and Azurite started here:
 * `node bench/object-storage.ts [--src DIR] [--runs N] [--arca ENTRY] [--work DIR]`.
 *
 * SRC is what is backed up (default: the `small/` folder of `gen-dataset gen --scale 1`, made in
 * the work directory; 20k small files, 259 MB). For each run, in fresh repositories and caches:
 *
 * 1. backup to a local directory;  2. backup to S3;  3. the same backup to S3 again (nothing
 * changed);  4. `copy` local → local;  5. `copy` S3 → Azure;  6. restore from Azure into an empty
 * directory, compared with the source file by file.
 *
 * Each step is one CLI process under `/usr/bin/time`: wall time, CPU time (user + sys) and peak
 * RSS, medians over the runs. The servers run on the same machine (their CPU is not counted; on a
 * shared machine compare CPU times, wall times vary with the load). ENTRY (default: this
 * checkout's dist/cli/main.js, built if missing) lets two builds be compared; the node options of
 * the CLI's shebang are used, and the key derivation is the default one, as a user's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startAzurite } from '../test/support/azurite.ts';
import { startS3Server } from '../test/support/s3-server.ts';

const root = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const { values } = parseArgs({
  options: {
    src: { type: 'string' }, runs: { type: 'string', default: '3' }, arca: { type: 'string' }, work: { type: 'string', default: '/tmp/arca-bench-object-storage' },
  },
});
const runs = Number(values.runs);
const work = path.resolve(values.work);
const entry = path.resolve(values.arca ?? path.join(root, 'dist', 'cli', 'main.js'));
if (values.arca === undefined && !existsSync(entry)) spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
const shebang = (await readFile(entry, 'utf8')).split('\n', 1)[0] ?? '';
const nodeOptions = shebang.split(/\s+/).filter((word) => word.startsWith('--'));

interface Figures { readonly wall: number; readonly cpu: number; readonly rssMiB: number }

/** Runs the CLI with `args` under /usr/bin/time; throws with its output if it fails. */
function arca(args: readonly string[], env: Record<string, string>): Figures {
  const timing = path.join(work, 'time.txt');
  const run = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timing, process.execPath, ...nodeOptions, entry, ...args], {
    env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  if (run.status !== 0) throw new Error(`arca ${args.join(' ')} failed (${run.status}): ${run.stderr}${run.stdout.slice(-2000)}`);
  const timeLine = spawnSync('tail', ['-n', '1', timing], { encoding: 'utf8' }).stdout.trim();
  const [wall = 0, user = 0, sys = 0, rssKiB = 0] = timeLine.split(' ').map(Number);
  return { wall, cpu: user + sys, rssMiB: rssKiB / 1024 };
}

async function sameTree(a: string, b: string): Promise<void> {
  for (const entry of await readdir(a, { withFileTypes: true })) {
    const [x, y] = [path.join(a, entry.name), path.join(b, entry.name)];
    if (entry.isDirectory()) await sameTree(x, y);
    else if (entry.isFile() && !(await readFile(x)).equals(await readFile(y))) throw new Error(`restored ${y} differs from ${x}`);
  }
}

const ROWS = ['backup to a local directory', 'backup to S3 (s3rver)', 'no-change backup to S3', '`copy` local → local', '`copy` S3 → Azure', 'restore from Azure'] as const;

await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
let src = values.src === undefined ? undefined : path.resolve(values.src);
if (src === undefined) {
  const gen = [path.join(root, '..', 'shared', 'bench', 'gen-dataset'), '/work/shared/bench/gen-dataset'].find((p) => existsSync(p));
  if (gen === undefined) throw new Error('gen-dataset not found: give --src DIR');
  const data = path.join(work, 'data');
  const made = spawnSync(gen, ['gen', '--root', data, '--scale', '1', '--quiet'], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('gen-dataset failed');
  src = path.join(data, 'small');
}

const [s3, azurite] = await Promise.all([startS3Server(), startAzurite()]);
const results: Figures[][] = ROWS.map(() => []);
try {
  const base = {
    AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: path.join(work, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(work, 'none'),
    AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString, ARCA_S3_ENDPOINT: s3.endpoint, ARCA_PASSWORD: 'bench', ARCA_FROM_PASSWORD: 'bench',
  };
  for (let run = 0; run < runs; run++) {
    const env = { ...base, XDG_CACHE_HOME: path.join(work, `cache-${run}`) };
    const local = path.join(work, `local-${run}`);
    const local2 = path.join(work, `local-copy-${run}`);
    const s3Repo = `s3://${s3.bucket}/run-${run}`;
    const azureRepo = `azure://${azurite.container}/run-${run}`;
    const target = path.join(work, `restore-${run}`);
    for (const repo of [local, local2, s3Repo, azureRepo]) arca(['init', '--quiet', '--repo', repo], env);
    const steps: Array<() => Figures> = [
      () => arca(['backup', '--quiet', '--repo', local, src], env),
      () => arca(['backup', '--quiet', '--repo', s3Repo, src], env),
      () => arca(['backup', '--quiet', '--repo', s3Repo, src], env),
      () => arca(['copy', '--quiet', '--repo', local2, '--from-repo', local], env),
      () => arca(['copy', '--quiet', '--repo', azureRepo, '--from-repo', s3Repo], env),
      () => arca(['restore', 'latest', '--quiet', '--repo', azureRepo, '--target', target], env),
    ];
    for (const [i, step] of steps.entries()) {
      spawnSync('sync');
      const figures = step();
      results[i]?.push(figures);
      console.error(`run ${run + 1}: ${ROWS[i]}: ${figures.wall.toFixed(2)} s wall, ${figures.cpu.toFixed(2)} s CPU, ${figures.rssMiB.toFixed(0)} MiB`);
    }
    await sameTree(src, path.join(target, src));
    await rm(target, { recursive: true, force: true });
  }
} finally {
  await Promise.all([s3.stop(), azurite.stop()]);
}

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};
console.log(`Source ${src}; ${runs} runs, medians; ${entry}\n`);
console.log('| work | wall s | CPU s (user+sys) | peak RSS MiB |\n|---|---:|---:|---:|');
for (const [i, row] of ROWS.entries()) {
  const figures = results[i] ?? [];
  console.log(`| ${row} | ${median(figures.map((f) => f.wall)).toFixed(2)} | ${median(figures.map((f) => f.cpu)).toFixed(2)} | ${median(figures.map((f) => f.rssMiB)).toFixed(0)} |`);
}
await rm(work, { recursive: true, force: true });
