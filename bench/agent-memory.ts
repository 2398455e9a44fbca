/**
 * The node agent's memory: its idle RSS, and its RSS and throughput while it backs up a pod
 * volume of gen-dataset's data and restores it into another pod, next to `arca backup` and
 * `arca restore` of the same directory.
 *
 *   node bench/agent-memory.ts [--scale S | --dataset DIR] [--work DIR] [--idle SECONDS]
 *
 *   --scale S     gen-dataset scale (default 1.0, about 2 GiB; 0.25 is about 0.5 GiB)
 *   --dataset DIR a dataset gen-dataset made already (on the file system of --work): it is moved
 *                 into the pod volume and back at the end, instead of generating one
 *   --work DIR    work directory, deleted and made anew (default /tmp/arca-agent-bench): the
 *                 dataset, the simulated node's pods directory, the repositories, the control plane
 *   --idle S      seconds the idle agent is sampled, before and after the jobs (default 15); after
 *                 them, its V8 heap and external memory are read from its /metrics too
 *
 * A real control plane (kube-apiserver and etcd, built once by scripts/kube/build-control-plane.sh)
 * and a real `arca agent` process on one simulated node, exactly as test/kube/agent.test.ts runs
 * them: a pod is created with `spec.nodeName`, the dataset is moved into its emptyDir's directory,
 * a PodVolumeBackup is created, then a PodVolumeRestore into a second pod. RSS is read from
 * /proc/PID/status (VmRSS) every 100 ms, so the figures are the process's own (worker threads
 * included). Env: GEN_DATASET overrides the path of gen-dataset.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CoreV1Api } from '@kubernetes/client-node';
import { initRepository } from '../engine/index.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind } from '../kube/api/kinds.ts';
import { NODE_LABEL } from '../kube/api/labels.ts';
import { ResourceClient } from '../kube/resources.ts';
import { findControlPlaneBinaries, kubeCacheDir, kubeConfigFromFile, startControlPlane } from '../scripts/kube/control-plane.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'cli', 'main.ts');
const CLI_NODE_OPTIONS = /^#!.*[ /]node(?: (.*))?$/m.exec(readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '')?.[1]?.split(' ').filter((o) => o !== '') ?? [];
const PASSWORD = 'bench-agent-memory';
const NS = 'arca-system';
const NODE = 'bench-node';
const MiB = 1 << 20;

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] ?? fallback : fallback;
}
const scale = argument('--scale', '1.0');
const work = path.resolve(argument('--work', '/tmp/arca-agent-bench'));
const idleSeconds = Number(argument('--idle', '15'));
const givenDataset = process.argv.includes('--dataset') ? path.resolve(argument('--dataset', '')) : undefined;
const METRICS = '127.0.0.1:18085';
const genDataset = process.env.GEN_DATASET ?? [path.join(ROOT, '..', 'shared', 'bench', 'gen-dataset'), '/work/shared/bench/gen-dataset'].find((p) => existsSync(p)) ?? 'gen-dataset';

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every 100 ms until stopped. */
class RssSampler {
  private readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number) {
    this.timer = setInterval(() => { const r = rssOf(pid); if (r > 0) this.samples.push(r); }, 100);
  }

  stop(): { peak: number; median: number; last: number } {
    clearInterval(this.timer);
    const sorted = [...this.samples].sort((a, b) => a - b);
    return { peak: sorted.at(-1) ?? 0, median: sorted[Math.floor(sorted.length / 2)] ?? 0, last: this.samples.at(-1) ?? 0 };
  }
}

function run(command: string, args: readonly string[], env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
    child.on('error', reject);
    child.on('exit', (code) => { if (code === 0) resolve(); else reject(new Error(`${command} ${args.join(' ')} exited ${String(code)}`)); });
  });
}

function startArca(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [...CLI_NODE_OPTIONS, '--no-warnings', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

/** Runs `arca ARGS` to its end, sampling its RSS; its duration in seconds and its memory. */
async function measuredArca(args: readonly string[], env: Record<string, string>): Promise<{ seconds: number; peak: number }> {
  const started = performance.now();
  const child = startArca(args, env);
  const sampler = new RssSampler(child.pid ?? 0);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (t: string) => { stderr += t; });
  child.stdout?.resume();
  const code = await new Promise<number | null>((resolve) => { child.on('exit', resolve); });
  const { peak } = sampler.stop();
  if (code !== 0) throw new Error(`arca ${args.join(' ')} exited ${String(code)}: ${stderr}`);
  return { seconds: (performance.now() - started) / 1000, peak };
}

/** The object once its job has ended; an error unless it Completed. */
async function completed<K extends typeof PodVolumeBackupKind | typeof PodVolumeRestoreKind>(client: ResourceClient<K>, name: string): ReturnType<ResourceClient<K>['get']> {
  for (;;) {
    const object = await client.get(NS, name);
    const phase = object.status?.phase ?? 'New';
    if (phase === 'Completed') return object;
    if (['PartiallyFailed', 'Failed', 'Canceled'].includes(phase)) throw new Error(`${client.kind.kind} ${name} ended ${phase}: ${String(object.status?.message)}`);
    await sleep(200);
  }
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MiB`;
const rate = (bytes: number, seconds: number): string => `${(bytes / MiB / seconds).toFixed(0)} MiB/s`;

async function dirBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const e of await fsp.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += (await fsp.lstat(path.join(e.parentPath, e.name))).size;
  }
  return { bytes, files };
}

async function main(): Promise<void> {
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const dataset = givenDataset ?? path.join(work, 'dataset');
  if (givenDataset === undefined) {
    console.log(`generating the dataset (scale ${scale}) with ${genDataset}...`);
    await run('python3', [genDataset, 'gen', '--root', dataset, '--scale', scale]);
  }
  const size = await dirBytes(dataset);
  console.log(`dataset: ${size.files} files, ${mib(size.bytes)}`);

  const binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
  const plane = await startControlPlane({ dir: path.join(work, 'kube'), binaries });
  let agent: ChildProcess | undefined;
  let volume: string | undefined;
  try {
    await run(binaries.kubectl, ['apply', '--server-side', '-k', path.join(ROOT, 'manifests', 'crds')], { KUBECONFIG: plane.kubeconfig });
    await run(binaries.kubectl, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'], { KUBECONFIG: plane.kubeconfig });
    const kc = kubeConfigFromFile(plane.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    const repoDir = path.join(work, 'repo');
    await (await initRepository({ url: repoDir, password: PASSWORD })).close();
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'password' }, stringData: { password: PASSWORD } } });
    await new ResourceClient(kc, BackupRepositoryKind, 'bench').create(NS, { metadata: { name: 'default' }, spec: { url: repoDir, passwordSecretRef: { name: 'password', key: 'password' } } });

    const podsDir = path.join(work, 'pods');
    await fsp.mkdir(podsDir);
    agent = startArca(['agent', '--node', NODE, '--pods-dir', podsDir, '--cache-dir', path.join(work, 'agent-cache'), '--namespace', NS,
      '--kubeconfig', plane.kubeconfig, '--metrics-address', METRICS]);
    agent.stdout?.resume();
    agent.stderr?.resume();
    const pid = agent.pid ?? 0;
    await sleep(3000);

    let idle = new RssSampler(pid);
    await sleep(idleSeconds * 1000);
    const idleBefore = idle.stop();
    console.log(`agent idle: ${mib(idleBefore.median)} (peak ${mib(idleBefore.peak)})`);

    const makePod = async (name: string): Promise<string> => {
      const pod = await core.createNamespacedPod({ namespace: NS, body: { metadata: { name }, spec: { nodeName: NODE, containers: [{ name: 'app', image: 'app' }], volumes: [{ name: 'data', emptyDir: {} }] } } });
      const uid = pod.metadata?.uid ?? '';
      const dir = path.join(podsDir, uid, 'volumes', 'kubernetes.io~empty-dir', 'data');
      await fsp.mkdir(path.dirname(dir), { recursive: true });
      return dir;
    };
    const podRef = async (name: string): Promise<{ namespace: string; name: string; uid: string }> => ({ namespace: NS, name, uid: (await core.readNamespacedPod({ namespace: NS, name })).metadata?.uid ?? '' });

    volume = await makePod('source');
    await fsp.rename(dataset, volume);
    const backups = new ResourceClient(kc, PodVolumeBackupKind, 'bench');
    let sampler = new RssSampler(pid);
    await backups.create(NS, { metadata: { name: 'b1', labels: { [NODE_LABEL]: NODE } }, spec: { node: NODE, pod: await podRef('source'), volume: 'data', repository: 'default', backupSet: 'bench' } });
    const backup = await completed(backups, 'b1');
    const backupRss = sampler.stop();
    const backupSeconds = backup.status?.stats?.durationSeconds ?? 0;
    console.log(`agent backup: ${backupSeconds.toFixed(1)} s, peak ${mib(backupRss.peak)}`);

    const target = await makePod('target');
    const restores = new ResourceClient(kc, PodVolumeRestoreKind, 'bench');
    sampler = new RssSampler(pid);
    await fsp.mkdir(target);
    await restores.create(NS, { metadata: { name: 'r1', labels: { [NODE_LABEL]: NODE } }, spec: { node: NODE, pod: await podRef('target'), volume: 'data', repository: 'default', snapshotID: backup.status?.snapshotID ?? '', restoreUID: 'r1' } });
    const restored = await completed(restores, 'r1');
    const restoreRss = sampler.stop();
    const restoreSeconds = restored.status?.stats?.durationSeconds ?? 0;
    console.log(`agent restore: ${restoreSeconds.toFixed(1)} s, peak ${mib(restoreRss.peak)}`);
    await fsp.rm(target, { recursive: true });

    idle = new RssSampler(pid);
    await sleep(idleSeconds * 1000);
    const idleAfter = idle.stop();
    const metrics = await (await fetch(`http://${METRICS}/metrics`)).text();
    const metric = (name: string): number => Number(new RegExp(`^arca_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    console.log(`agent idle after the jobs: ${mib(idleAfter.median)} (last ${mib(idleAfter.last)}); V8 heap ${mib(metric('nodejs_heap_size_used_bytes'))} used of ${mib(metric('nodejs_heap_size_total_bytes'))}, external ${mib(metric('nodejs_external_memory_bytes'))}`);

    const env = { ARCA_PASSWORD: PASSWORD };
    const cliRepo = path.join(work, 'repo-cli');
    await run(process.execPath, [...CLI_NODE_OPTIONS, '--no-warnings', CLI, 'init', '--repo', cliRepo], env);
    const cliBackup = await measuredArca(['backup', '--repo', cliRepo, '--quiet', '--no-cache', volume], env);
    console.log(`arca backup: ${cliBackup.seconds.toFixed(1)} s, peak ${mib(cliBackup.peak)}`);
    const cliRestore = await measuredArca(['restore', 'latest', '--repo', cliRepo, '--quiet', '--no-cache', '--target', path.join(work, 'cli-target')], env);
    console.log(`arca restore: ${cliRestore.seconds.toFixed(1)} s, peak ${mib(cliRestore.peak)}`);

    console.log([
      '',
      `| ${size.files} files, ${mib(size.bytes)} (gen-dataset scale ${scale}) | time | throughput | peak RSS |`,
      '|---|---|---|---|',
      `| agent idle (before, after the jobs) | | | ${mib(idleBefore.median)}, ${mib(idleAfter.median)} |`,
      `| agent: PodVolumeBackup | ${backupSeconds.toFixed(1)} s | ${rate(size.bytes, backupSeconds)} | ${mib(backupRss.peak)} |`,
      `| agent: PodVolumeRestore | ${restoreSeconds.toFixed(1)} s | ${rate(size.bytes, restoreSeconds)} | ${mib(restoreRss.peak)} |`,
      `| arca backup (same directory) | ${cliBackup.seconds.toFixed(1)} s | ${rate(size.bytes, cliBackup.seconds)} | ${mib(cliBackup.peak)} |`,
      `| arca restore | ${cliRestore.seconds.toFixed(1)} s | ${rate(size.bytes, cliRestore.seconds)} | ${mib(cliRestore.peak)} |`,
    ].join('\n'));
  } finally {
    agent?.kill('SIGTERM');
    await plane.stop();
    if (givenDataset !== undefined && volume !== undefined) await fsp.rename(volume, givenDataset);
    await fsp.rm(work, { recursive: true, force: true });
  }
}

await main();
