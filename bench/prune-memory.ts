/**
 * Time and peak memory of `arca prune` and `arca check` on a repository of N data blobs.
 *
 *   node bench/prune-memory.ts [N] [--dir DIR] [--template DIR] [--keep] [--timeline]
 *
 *   N               data blobs (default 1,000,000; 1e6 and 1_000_000 are accepted)
 *   --dir DIR       where to build the repository (default: a fresh directory under the OS temp dir,
 *                   deleted at the end unless --keep); must not exist yet
 *   --template DIR  reuse a repository generated earlier with the same N: it is copied to --dir
 *                   instead of generating anew (it is generated into DIR first if DIR does not exist),
 *                   so runs before and after a code change measure the very same repository
 *   --keep          keep the measured repository
 *   --timeline      also print each step's memory samples (every 200 ms) with the CLI's log lines
 *
 * Generation goes through the library, not through `backup` (which would chunk real files):
 * N distinct random blobs of 64-512 bytes are sealed and packed by a BlobWriter into 16 MiB
 * packs, with realistic trees: files of 10 chunks, 100 files per directory, 100 directories per
 * top-level directory. Three snapshots:
 *   A  the first 10% of files, plus 60% of the others (by a hash of the file number): ~64%
 *   B  the other 90% of files, less the 17% of them that only A has: ~75%, sharing ~39% with A
 *   C  the same tree as B (an unchanged re-backup)
 * Snapshot A is then forgotten, so ~25% of the data blobs become unused: the first ~10% of packs
 * entirely (prune deletes them) and ~17% of every other pack (prune repacks them to reach
 * --max-unused 5).
 *
 * Each measured step is a fresh `node <the shebang options> cli/main.ts ... --no-cache --json` under /usr/bin/time, so
 * its peak RSS is its own; a small --import hook in the child samples process.memoryUsage().
 * Steps: check (structure), forget A, prune --dry-run, prune --max-unused 5,
 * check --read-data-subset 5%, and a second prune (no blob is unused any more).
 *
 * Generating 1e6 blobs takes about 1.5 minutes on 2 cores, the whole run about 4; the repository
 * takes ~440 MiB on disk (twice that with --template).
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeBlob, sealBlob } from '../repository/blob/blob-codec.ts';
import { BlobWriter } from '../repository/blob-writer.ts';
import { blobId } from '../repository/crypto/master-key.ts';
import { Repository } from '../repository/repository.ts';
import { fmix32 } from '../repository/index/id-words.ts';
import { LocalStorage } from '../repository/storage/local.ts';
import { encodeTree, type DirNode, type FileNode, type NodeMeta, type Tree } from '../repository/tree/tree.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'cli', 'main.ts');
/** The node options of the CLI's shebang line, so each step runs as the installed `arca` does. */
const CLI_NODE_OPTIONS = /^#!.*[ /]node(?: (.*))?$/m.exec(readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '')?.[1]?.split(' ').filter((o) => o !== '') ?? [];
const PASSWORD = 'bench-prune-memory';
const CHUNKS_PER_FILE = 10;
const FILES_PER_DIR = 100;
const DIRS_PER_TOP = 100;
const MIN_BLOB = 64;
const MAX_BLOB = 512;

// ---- arguments

interface Args {
  n: number;
  dir: string | undefined;
  template: string | undefined;
  keep: boolean;
  timeline: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { n: 1_000_000, dir: undefined, template: undefined, keep: false, timeline: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--dir') args.dir = path.resolve(value());
    else if (a === '--template') args.template = path.resolve(value());
    else if (a === '--keep') args.keep = true;
    else if (a === '--timeline') args.timeline = true;
    else if (/^[\d_,.e+]+$/i.test(a)) {
      const n = Number(a.replaceAll('_', '').replaceAll(',', ''));
      if (!Number.isInteger(n) || n < CHUNKS_PER_FILE * FILES_PER_DIR) throw new Error(`invalid blob count ${a}: pass an integer >= ${CHUNKS_PER_FILE * FILES_PER_DIR}, e.g. 1e6`);
      args.n = n;
    } else throw new Error(`unknown argument ${a}; usage: node bench/prune-memory.ts [N] [--dir DIR] [--template DIR] [--keep] [--timeline]`);
  }
  return args;
}

const fmt = (n: number, digits = 1): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const fmtInt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const mib = (bytes: number): string => fmt(bytes / 2 ** 20);

// ---- generation

/** Which snapshots file number `f` (of `files`) is in. */
function membership(f: number, files: number): { a: boolean; b: boolean } {
  if (f < Math.floor(files / 10)) return { a: true, b: false };
  const u = fmix32(f ^ 0x5eed) % 100;
  return { a: u < 60, b: u >= 17 };
}

const META_TIME = 1_700_000_000_000_000_000n;

function meta(name: string, inode: number): NodeMeta {
  return {
    name: Buffer.from(name), mode: 0o644, uid: 1000, gid: 1000, user: 'bench', group: 'bench',
    mtimeNs: META_TIME, atimeNs: META_TIME, ctimeNs: META_TIME, inode: BigInt(inode), deviceId: 2049n, links: 1,
  };
}

interface GenerateResult {
  snapshots: { a: string; b: string; c: string };
  dataBlobs: number;
  treeBlobs: number;
  files: number;
  dirs: number;
  packs: number;
  bytes: number;
  seconds: number;
}

async function generate(dir: string, n: number): Promise<GenerateResult> {
  const t0 = performance.now();
  process.env.ARCA_KDF_N = '1024'; // For the arca processes it starts.
  const repo = await Repository.init(new LocalStorage(dir), Buffer.from(PASSWORD), { packSize: 16 << 20 }, { fixedN: 1024 });
  const level = repo.config.compression.level;
  const writer = new BlobWriter(repo);
  const files = Math.floor(n / CHUNKS_PER_FILE);
  const dirs = Math.ceil(files / FILES_PER_DIR);
  const ids = Buffer.alloc(files * CHUNKS_PER_FILE * 32);
  const pool = Buffer.allocUnsafe(1 << 20);
  let poolPos = pool.length;
  let dataBlobs = 0;
  let treeBlobs = 0;

  const addTree = async (tree: Tree): Promise<Buffer> => {
    const sealed = encodeBlob(repo.keys, encodeTree(tree), level);
    if (await writer.addIfNew('tree', sealed)) treeBlobs++;
    return sealed.id;
  };
  const dirNode = (name: string, inode: number, subtree: Buffer): DirNode => ({ ...meta(name, inode), mode: 0o755, type: 'dir', subtree });

  const tops = { a: [] as DirNode[], b: [] as DirNode[] };
  let subdirs = { a: [] as DirNode[], b: [] as DirNode[] };
  let lastReport = performance.now();
  for (let d = 0; d < dirs; d++) {
    const listing = { a: [] as FileNode[], b: [] as FileNode[] };
    for (let f = d * FILES_PER_DIR; f < Math.min(files, (d + 1) * FILES_PER_DIR); f++) {
      let size = 0;
      const content: Buffer[] = [];
      for (let c = 0; c < CHUNKS_PER_FILE; c++) {
        const i = f * CHUNKS_PER_FILE + c;
        const len = MIN_BLOB + (fmix32(i) % (MAX_BLOB - MIN_BLOB + 1));
        if (poolPos + len > pool.length) {
          randomFillSync(pool);
          poolPos = 0;
        }
        const plain = pool.subarray(poolPos, poolPos + len);
        poolPos += len;
        plain.writeUInt32BE(i, 0); // Distinct even if the random bytes were not.
        const id = ids.subarray(i * 32, i * 32 + 32);
        blobId(repo.keys.idKey, plain).copy(id);
        // Random bytes do not compress: level 0 stores them as backup would after trying zstd.
        if (writer.claim(id)) {
          await writer.add('data', sealBlob(repo.keys, id, plain, 0));
          dataBlobs++;
        }
        content.push(id);
        size += len;
      }
      const node: FileNode = { ...meta(`file-${String(f).padStart(7, '0')}.bin`, 1_000_000 + f), type: 'file', size, content };
      const m = membership(f, files);
      if (m.a) listing.a.push(node);
      if (m.b) listing.b.push(node);
    }
    const name = `dir-${String(d).padStart(5, '0')}`;
    for (const s of ['a', 'b'] as const) if (listing[s].length > 0) subdirs[s].push(dirNode(name, 10 + d, await addTree({ nodes: listing[s] })));
    if ((d + 1) % DIRS_PER_TOP === 0 || d === dirs - 1) {
      const top = `top-${String(Math.floor(d / DIRS_PER_TOP)).padStart(3, '0')}`;
      for (const s of ['a', 'b'] as const) if (subdirs[s].length > 0) tops[s].push(dirNode(top, 5 + Math.floor(d / DIRS_PER_TOP), await addTree({ nodes: subdirs[s] })));
      subdirs = { a: [], b: [] };
    }
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      process.stderr.write(`  ${fmtInt(dataBlobs)} data blobs, ${fmtInt(writer.stats.packs)} packs, ${fmt((lastReport - t0) / 1000)} s\n`);
    }
  }
  const rootOf = async (s: 'a' | 'b'): Promise<Buffer> => addTree({ nodes: [dirNode('data', 2, await addTree({ nodes: tops[s] }))] });
  const roots = { a: await rootOf('a'), b: await rootOf('b') };
  await writer.flush();

  const snapshot = (tree: Buffer, when: string, tag: string): Parameters<Repository['saveSnapshot']>[0] => ({
    version: 1, time: when, tree: tree.toString('hex'), paths: ['/data'], hostname: 'bench', username: 'bench', tags: [tag], program_version: 'bench',
  });
  const a = await repo.saveSnapshot(snapshot(roots.a, '2026-01-01T00:00:00Z', 'A'));
  const b = await repo.saveSnapshot(snapshot(roots.b, '2026-01-02T00:00:00Z', 'B'));
  const c = await repo.saveSnapshot(snapshot(roots.b, '2026-01-03T00:00:00Z', 'C'));
  return {
    snapshots: { a, b, c }, dataBlobs, treeBlobs, files, dirs,
    packs: writer.stats.packs, bytes: writer.stats.bytesAdded, seconds: (performance.now() - t0) / 1000,
  };
}

async function duSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fsp.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await fsp.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

async function countObjects(dir: string, prefix: string): Promise<number> {
  try {
    return (await fsp.readdir(path.join(dir, prefix), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
  } catch {
    return 0;
  }
}

// ---- measured steps

/** Loaded into each measured child with --import: samples memory, writes it out at exit. */
const HOOK = `
import { writeFileSync } from 'node:fs';
const out = process.env.ARCA_BENCH_MEM_OUT;
const t0 = performance.now();
const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
const samples = [];
const sample = () => {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak)) if (m[k] > peak[k]) peak[k] = m[k];
  samples.push([Math.round(performance.now() - t0), m.rss, m.heapUsed, m.external]);
};
setInterval(sample, 200).unref();
process.on('exit', () => {
  sample();
  writeFileSync(out, JSON.stringify({ peak, maxRSS: process.resourceUsage().maxRSS * 1024, samples }));
});
`;

interface StepResult {
  name: string;
  code: number;
  seconds: number;
  maxRss: number;
  peak: { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  samples: Array<[number, number, number, number]>;
  stdout: string;
  /** stderr lines with their time since the start (ms). */
  log: Array<[number, string]>;
}

async function runStep(name: string, repoDir: string, cliArgs: readonly string[]): Promise<StepResult> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'arca-bench-step-'));
  const memOut = path.join(tmp, 'mem.json');
  const timeOut = path.join(tmp, 'time.txt');
  const args = [
    '-o', timeOut, '-f', '%e %M', process.execPath, ...CLI_NODE_OPTIONS,
    `--import=data:text/javascript,${encodeURIComponent(HOOK)}`,
    CLI, ...cliArgs, '--repo', repoDir, '--no-cache', '--json',
  ];
  const env = { ...process.env, ARCA_PASSWORD: PASSWORD, ARCA_BENCH_MEM_OUT: memOut };
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const log: Array<[number, string]> = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    const lines = (partial + s).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) log.push([Math.round(performance.now() - t0), line]);
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => { resolve(c ?? -1); });
  });
  if (partial !== '') log.push([Math.round(performance.now() - t0), partial]);
  const [elapsed, maxKb] = readFileSync(timeOut, 'utf8').trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  const mem = existsSync(memOut)
    ? (JSON.parse(readFileSync(memOut, 'utf8')) as { peak: StepResult['peak']; samples: StepResult['samples'] })
    : { peak: { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 }, samples: [] };
  await fsp.rm(tmp, { recursive: true, force: true });
  if (code !== 0) {
    process.stderr.write(`step "${name}" exited with ${code}:\n${stdout}\n${log.map(([, l]) => l).join('\n')}\n`);
  }
  return { name, code, seconds: elapsed ?? Number.NaN, maxRss: (maxKb ?? Number.NaN) * 1024, peak: mem.peak, samples: mem.samples, stdout, log };
}

interface PruneJson {
  packs_marked: number; bytes_marked: number; packs_repacked: number; blobs_repacked: number; packs_deleted: number;
  bytes_reclaimed: number; packs_resurrected: number; plans_pending: number; index_files_before: number; index_files_after: number; unused_percent_after: number;
}
interface CheckJson { problems: unknown[]; snapshots_checked: number; packs_checked: number; packs_read: number; blobs_read: number }

function lastJson(stdout: string): unknown {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return line === undefined ? undefined : (JSON.parse(line) as unknown);
}

// ---- main

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const N = args.n;
  const madeTemp = args.dir === undefined;
  const dir = args.dir ?? path.join(await fsp.mkdtemp(path.join(os.tmpdir(), 'arca-bench-prune-')), 'repo');
  if (existsSync(dir)) throw new Error(`${dir} exists already; give a new --dir`);
  console.log(`arca prune/check memory benchmark: N = ${fmtInt(N)} data blobs (node ${process.version}, ${os.cpus().length} CPUs)`);

  // 1. The repository.
  let snapshots: GenerateResult['snapshots'];
  const infoFile = (d: string): string => path.join(d, '..', `${path.basename(d)}.bench.json`);
  if (args.template !== undefined && existsSync(args.template)) {
    const info = JSON.parse(readFileSync(infoFile(args.template), 'utf8')) as GenerateResult & { n: number };
    if (info.n !== N) throw new Error(`template ${args.template} holds ${info.n} blobs, not ${N}`);
    console.log(`copying template ${args.template} (generated in ${fmt(info.seconds)} s)`);
    const t0 = performance.now();
    await fsp.cp(args.template, dir, { recursive: true });
    console.log(`copied in ${fmt((performance.now() - t0) / 1000)} s`);
    snapshots = info.snapshots;
    printGeneration(info);
  } else {
    const target = args.template ?? dir;
    console.log(`generating into ${target} ...`);
    const info = await generate(target, N);
    await fsp.writeFile(infoFile(target), JSON.stringify({ ...info, n: N }));
    printGeneration(info);
    if (args.template !== undefined) await fsp.cp(args.template, dir, { recursive: true });
    snapshots = info.snapshots;
  }
  const before = await duSize(dir);
  console.log(`repository: ${fmtInt(before.files)} files, ${mib(before.bytes)} MiB; ${await countObjects(dir, 'data')} packs, ${await countObjects(dir, 'index')} index files`);

  // 2. The steps, each in a fresh process.
  const steps: StepResult[] = [];
  const run = async (name: string, cliArgs: readonly string[]): Promise<StepResult> => {
    process.stderr.write(`running ${name} ...\n`);
    const r = await runStep(name, dir, cliArgs);
    steps.push(r);
    return r;
  };
  await run('baseline: arca --version', ['--version']);
  await run('check (structure)', ['check']);
  await run('forget A', ['forget', snapshots.a]);
  await run('prune --dry-run', ['prune', '--max-unused', '5', '--dry-run']);
  await run('prune --max-unused 5', ['prune', '--max-unused', '5']);
  await run('check --read-data-subset 5%', ['check', '--read-data-subset', '5%']);
  await run('prune again (0 unused)', ['prune', '--max-unused', '5']);
  const after = await duSize(dir);

  // 3. The table.
  const baseline = steps[0]?.maxRss ?? 0;
  const rows: string[][] = [[
    'step', 'wall s', 'peak RSS MiB', 'RSS B/blob', '(-base) B/blob', 'heap MiB', 'ext MiB', 'packs marked', 'deleted', 'repacked', 'reclaimed MiB', 'blobs', 'exit',
  ]];
  for (const s of steps) {
    const prune = s.name.startsWith('prune') ? lastJson(s.stdout) as PruneJson | undefined : undefined;
    const check = s.name.startsWith('check') ? lastJson(s.stdout) as CheckJson | undefined : undefined;
    const blobs = prune ? `${fmtInt(prune.blobs_repacked)} copied` : check ? `${fmtInt(check.blobs_read)} read` : '';
    rows.push([
      s.name, fmt(s.seconds, 2), mib(s.maxRss), s.name.startsWith('baseline') ? '' : fmt(s.maxRss / N), s.name.startsWith('baseline') ? '' : fmt((s.maxRss - baseline) / N),
      mib(s.peak.heapUsed), mib(s.peak.external), prune ? fmtInt(prune.packs_marked) : '', prune ? fmtInt(prune.packs_deleted) : '', prune ? fmtInt(prune.packs_repacked) : '',
      prune ? mib(prune.bytes_reclaimed) : '', blobs, String(s.code),
    ]);
  }
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  console.log('');
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('');
  console.log('peak RSS: /usr/bin/time %M of the CLI process; heap/ext: peaks of process.memoryUsage() heapUsed/external sampled every 200 ms (may miss short peaks)');
  console.log(`B/blob: per data blob (N = ${fmtInt(N)}); "(-base)" subtracts the RSS of a bare "arca --version" (${mib(baseline)} MiB)`);
  for (const s of steps) {
    const prune = s.name.startsWith('prune') ? lastJson(s.stdout) as PruneJson | undefined : undefined;
    if (prune) console.log(`${s.name}: ${JSON.stringify(prune)}`);
    const check = s.name.startsWith('check') ? lastJson(s.stdout) as CheckJson | undefined : undefined;
    if (check) console.log(`${s.name}: ${check.problems.length} problems, ${check.snapshots_checked} snapshots, ${check.packs_checked} packs, ${check.packs_read} packs read`);
  }
  console.log(`repository after: ${fmtInt(after.files)} files, ${mib(after.bytes)} MiB (was ${mib(before.bytes)} MiB); ${await countObjects(dir, 'data')} packs, ${await countObjects(dir, 'index')} index files`);

  if (args.timeline) {
    for (const s of steps) {
      if (s.name.startsWith('baseline')) continue;
      console.log(`\n-- ${s.name}: t ms, rss / heapUsed / external MiB (and the CLI's log lines)`);
      const events: Array<[number, string]> = [
        ...s.samples.map(([t, rss, heap, ext]): [number, string] => [t, `${mib(rss).padStart(8)} ${mib(heap).padStart(8)} ${mib(ext).padStart(8)}`]),
        ...s.log.map(([t, line]): [number, string] => [t, `  log: ${line}`]),
      ].sort((x, y) => x[0] - y[0]);
      for (const [t, text] of events) console.log(`${String(t).padStart(7)} ${text}`);
    }
  }

  if (!args.keep) await fsp.rm(madeTemp ? path.dirname(dir) : dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
  if (steps.some((s) => s.code !== 0)) process.exitCode = 1;
}

function printGeneration(info: GenerateResult): void {
  console.log(
    `generated ${fmtInt(info.dataBlobs)} data blobs + ${fmtInt(info.treeBlobs)} tree blobs (${fmtInt(info.files)} files in ${fmtInt(info.dirs)} directories, 3 snapshots) ` +
    `into ${fmtInt(info.packs)} packs, ${mib(info.bytes)} MiB, in ${fmt(info.seconds)} s`,
  );
}

await main();
