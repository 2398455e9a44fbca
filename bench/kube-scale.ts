/**
 * Journey 6 of issue 14, as a benchmark: one backup set of many small volumes across many nodes.
 *
 *   npm run bench:kube-scale [-- NODES PODS]      (default 20 nodes, 200 pods, 2 volumes each)
 *
 * Starts a throw-away control plane, the controller and one agent per simulated node (processes,
 * as in the journeys; support/simulated-cluster.ts plays the kubelets), runs PODS pods spread over
 * the nodes, each with two emptyDir volumes of a few small files, then one VolumeBackup of their
 * namespace into a local repository. Reports the time from the VolumeBackup's creation to
 * Completed (as the controller's own timestamps say), the API requests served meanwhile by verb
 * and resource (the API server's apiserver_request_total; the benchmark's own few reads of the
 * VolumeBackup are among them), and the peak resident memory (VmHWM) of the controller and the
 * agents. Needs the control plane binaries (scripts/kube/build-control-plane.sh).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { findControlPlaneBinaries, kubeCacheDir, kubeConfigFromFile, startControlPlane } from '../scripts/kube/control-plane.ts';
import { arcaOk } from '../test/support/cli.ts';
import { final, SimulatedCluster } from '../test/support/simulated-cluster.ts';

const NODES = Number(process.argv[2] ?? 20);
const PODS = Number(process.argv[3] ?? 200);
const VOLUMES = ['a', 'b'];
const FILES_PER_VOLUME = 5;
const PASSWORD = 'bench-password';
const CRDS = fileURLToPath(new URL('../manifests/crds', import.meta.url));

const binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-kube-scale-'));
const plane = await startControlPlane({ dir: path.join(dir, 'control-plane'), binaries });
const kubectl = async (...args: string[]): Promise<string> => (await promisify(execFile)(binaries.kubectl, [`--kubeconfig=${plane.kubeconfig}`, ...args], { maxBuffer: 64 << 20 })).stdout;
const kc = kubeConfigFromFile(plane.kubeconfig);
const cluster = new SimulatedCluster(kc, { kubeconfig: plane.kubeconfig, root: path.join(dir, 'nodes'), namespace: 'arca-system', cluster: 'bench' });
try {
  await kubectl('apply', '--server-side', '-k', CRDS);
  await kubectl('wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s');
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of ['arca-system', 'app']) await core.createNamespace({ body: { metadata: { name } } });
  const nodes = Array.from({ length: NODES }, (_, i) => `node-${String(i).padStart(2, '0')}`);
  await cluster.install(nodes);
  const repoDir = path.join(dir, 'repository');
  await arcaOk(['init', '--repo', repoDir], { env: { ARCA_PASSWORD: PASSWORD } });
  await cluster.addRepository('default', PASSWORD, { url: repoDir });

  for (let i = 0; i < PODS; i++) {
    const { volumes } = await cluster.runPod('app', nodes[i % NODES] ?? '', {
      metadata: { name: `app-${i}`, annotations: { 'backup.arca.dev/backup-volumes': VOLUMES.join(',') } },
      spec: { containers: [{ name: 'app', image: 'app:1' }], volumes: VOLUMES.map((name) => ({ name, emptyDir: {} })) },
    }, Object.fromEntries(VOLUMES.map((v) => [v, `kubernetes.io~empty-dir/${v}`])));
    for (const volumeDir of Object.values(volumes)) {
      await mkdir(path.join(volumeDir, 'sub'));
      for (let f = 0; f < FILES_PER_VOLUME; f++) await writeFile(path.join(volumeDir, 'sub', `f-${f}`), randomBytes(1024 + f * 512));
    }
  }

  const requestsBefore = await apiRequests();
  await cluster.backups.create('arca-system', { metadata: { name: 'scale' }, spec: { repository: 'default', includedNamespaces: ['app'] } });
  const done = await final(cluster.backups, 'arca-system', 'scale');
  const requestsAfter = await apiRequests();
  const seconds = (Date.parse(done.status?.completionTimestamp ?? '') - Date.parse(done.metadata.creationTimestamp ?? '')) / 1000;

  const memory = await Promise.all(cluster.running().map(async ({ name, pid }) => ({ name, mib: await peakMiB(pid) })));
  const agents = memory.filter((m) => m.name.startsWith('agent ')).map((m) => m.mib);
  const byKey = [...requestsAfter].map(([key, n]) => [key, n - (requestsBefore.get(key) ?? 0)] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  console.log(JSON.stringify({
    nodes: NODES, pods: PODS, volumes: PODS * VOLUMES.length, phase: done.status?.phase, volumeCounts: done.status?.volumes,
    secondsToCompleted: seconds,
    apiRequests: byKey.reduce((n, [, c]) => n + c, 0),
    apiRequestsByVerbAndResource: Object.fromEntries(byKey),
    controllerPeakMiB: memory.find((m) => m.name === 'controller')?.mib,
    agentPeakMiB: { max: Math.max(...agents), median: agents.sort((a, b) => a - b)[Math.floor(agents.length / 2)] },
  }, null, 2));
} finally {
  await cluster.stop();
  await plane.stop();
  await rm(dir, { recursive: true, force: true });
}

/** apiserver_request_total summed by `VERB resource` (subresources as resource/subresource). */
async function apiRequests(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await kubectl('get', '--raw', '/metrics')).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const label = (name: string): string => new RegExp(`[{,]${name}="([^"]*)"`).exec(line)?.[1] ?? '';
    const sub = label('subresource');
    const key = `${label('verb')} ${label('resource')}${sub === '' ? '' : `/${sub}`}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

async function peakMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024);
}
