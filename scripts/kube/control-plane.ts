/**
 * A real Kubernetes control plane for tests and local use: etcd and kube-apiserver, built by
 * build-control-plane.sh, started on random 127.0.0.1 ports with RBAC on and one admin token.
 * There is no scheduler, controller-manager or kubelet: pods stay Pending unless a test plays the
 * kubelet. Used by the kube test project's global setup and by `npm run cluster`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { constants as fsConstants, openSync, closeSync } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';

const BUILD_COMMAND = 'bash scripts/kube/build-control-plane.sh';

const VERSIONS_FILE = fileURLToPath(new URL('./versions.env', import.meta.url));
const STATE_FILE = 'control-plane.json';
const ADMIN_USER = 'arca-admin';

/** The binaries cache has no complete build of the pinned versions. */
export class ControlPlaneBinariesMissingError extends Error {
  override readonly name = 'ControlPlaneBinariesMissingError';
}

/** etcd or kube-apiserver exited or did not become ready; the message ends with its log's tail. */
export class ControlPlaneStartError extends Error {
  override readonly name = 'ControlPlaneStartError';
}

export interface ControlPlaneBinaries {
  /** The pinned Kubernetes version, e.g. `v1.37.2`. */
  readonly version: string;
  readonly kubeApiserver: string;
  readonly kubectl: string;
  readonly etcd: string;
}

type ComponentName = 'etcd' | 'kube-apiserver';

/** A process of a started control plane, named so a stale pid is never signalled by mistake. */
export interface ControlPlaneProcess {
  readonly name: ComponentName;
  readonly pid: number;
  readonly executable: string;
}

/** What `DIR/control-plane.json` holds: enough for another process to use or stop the plane. */
export interface ControlPlaneState {
  readonly version: string;
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  /** Admin (system:masters) kubeconfig. */
  readonly kubeconfig: string;
  /** In stop order: the API server before etcd. */
  readonly processes: readonly ControlPlaneProcess[];
}

export interface ControlPlane extends ControlPlaneState {
  readonly dir: string;
  stop(): Promise<void>;
  /**
   * Kills kube-apiserver (SIGKILL: no graceful close of its connections) and starts it again on
   * the same port, etcd and keys; resolves once it is ready. `processes` and control-plane.json
   * then name the new process.
   */
  restartApiServer(): Promise<void>;
}

export interface StartOptions {
  /** Holds etcd's data and the keys (both made anew), the logs, the kubeconfig and control-plane.json. */
  readonly dir: string;
  readonly binaries: ControlPlaneBinaries;
  /** Keep running after this process exits (its own session, no handles held). */
  readonly detached?: boolean;
  readonly readyTimeoutMs?: number;
}

/** `ARCA_KUBE_CACHE`, else `~/.cache/arca/kube`; the same rule as build-control-plane.sh. */
export function kubeCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  return env.ARCA_KUBE_CACHE ?? path.join(os.homedir(), '.cache', 'arca', 'kube');
}

/** The pinned versions from versions.env (`KEY=VALUE` lines), the file the build script sources. */
export async function pinnedVersions(): Promise<{ readonly kubernetes: string; readonly etcd: string }> {
  const values = new Map<string, string>();
  for (const line of (await readFile(VERSIONS_FILE, 'utf8')).split('\n')) {
    const match = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  const kubernetes = values.get('KUBERNETES_VERSION');
  const etcd = values.get('ETCD_VERSION');
  if (kubernetes === undefined || etcd === undefined) throw new Error(`${VERSIONS_FILE} must set KUBERNETES_VERSION and ETCD_VERSION`);
  return { kubernetes, etcd };
}

/** The built binaries of the pinned version under `cacheDir`, or ControlPlaneBinariesMissingError. */
export async function findControlPlaneBinaries(cacheDir: string): Promise<ControlPlaneBinaries> {
  const { kubernetes } = await pinnedVersions();
  const bin = path.join(cacheDir, kubernetes, 'bin');
  const binaries = {
    version: kubernetes,
    kubeApiserver: path.join(bin, 'kube-apiserver'),
    kubectl: path.join(bin, 'kubectl'),
    etcd: path.join(bin, 'etcd'),
  };
  for (const file of [binaries.kubeApiserver, binaries.kubectl, binaries.etcd]) {
    try {
      await access(file, fsConstants.X_OK);
    } catch {
      throw new ControlPlaneBinariesMissingError(`${path.basename(file)} ${kubernetes} is not built in ${bin}: run \`${BUILD_COMMAND}\` (once per machine, 5-12 min on 2 cores)`);
    }
  }
  return binaries;
}

/** Starts etcd, then kube-apiserver, and returns once `default` namespace can be read as admin. */
export async function startControlPlane(options: StartOptions): Promise<ControlPlane> {
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      // A port picked free may be taken by someone else before our process binds it.
      const portTaken = err instanceof ControlPlaneStartError && err.message.includes('address already in use');
      if (!portTaken || attempt === attempts) throw err;
    }
  }
}

/** The state that startControlPlane wrote to `dir`. */
export async function readControlPlaneState(dir: string): Promise<ControlPlaneState> {
  const file = path.join(dir, STATE_FILE);
  const state = JSON.parse(await readFile(file, 'utf8')) as Partial<ControlPlaneState>;
  if (typeof state.server !== 'string' || !Array.isArray(state.processes)) throw new Error(`${file} is not a control plane's state file`);
  return state as ControlPlaneState;
}

/** Stops each process in order: SIGTERM, then SIGKILL after 10 s; a pid now held by another program is left alone. */
export async function stopProcesses(processes: readonly ControlPlaneProcess[]): Promise<void> {
  for (const proc of processes) {
    if (!(await isRunning(proc))) continue;
    signal(proc.pid, 'SIGTERM');
    if (await exited(proc, 10_000)) continue;
    signal(proc.pid, 'SIGKILL');
    await exited(proc, 10_000);
  }
}

async function startOnce({ dir, binaries, detached = false, readyTimeoutMs = 180_000 }: StartOptions): Promise<ControlPlane> {
  // Every start is fresh: etcd's old data would name the peer port and keys of an earlier start.
  const pki = path.join(dir, 'pki');
  const etcdData = path.join(dir, 'etcd-data');
  await Promise.all([pki, etcdData].map((d) => rm(d, { recursive: true, force: true })));
  await mkdir(pki, { recursive: true });
  const [etcdClientPort, etcdPeerPort, apiPort] = await freePorts(3);
  const deadline = Date.now() + readyTimeoutMs;
  const started: Started[] = [];
  const stop = (): Promise<void> => stopProcesses(started.map((s) => s.process).reverse());
  try {
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    started.push(launch(dir, 'etcd', binaries.etcd, [
      '--name=arca', `--data-dir=${etcdData}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=arca=${peerUrl}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ], detached));
    await waitUntil(started, deadline, 'etcd /health', async () => {
      const response = await fetch(`${etcdUrl}/health`).catch(() => undefined);
      return response?.ok === true;
    });

    const adminToken = randomBytes(24).toString('hex');
    const files = await writeApiServerFiles(pki, adminToken);
    const certDir = path.join(pki, 'serving');
    const apiServerArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${apiPort}`, '--bind-address=127.0.0.1',
      // These machines have no default route; without these two the API server exits.
      '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
      `--cert-dir=${certDir}`,
      '--authorization-mode=RBAC', `--token-auth-file=${files.tokens}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${files.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${files.serviceAccountPrivateKey}`,
      '--service-cluster-ip-range=10.0.0.0/24', '--allow-privileged=true',
      // No controller-manager makes the default ServiceAccount this plugin waits for.
      '--disable-admission-plugins=ServiceAccount',
    ];
    started.push(launch(dir, 'kube-apiserver', binaries.kubeApiserver, apiServerArgs, detached));
    const server = `https://127.0.0.1:${apiPort}`;
    const servingCert = path.join(certDir, 'apiserver.crt');
    const apiServerReady = (by: number) => waitUntil(started, by, 'kube-apiserver /readyz', async () => {
      const ca = await readFile(servingCert).catch(() => undefined);
      return ca !== undefined && (await httpsStatus(`${server}/readyz`, ca, adminToken)) === 200;
    });
    await apiServerReady(deadline);

    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, adminKubeconfigYaml(server, await readFile(servingCert), adminToken), { mode: 0o600 });
    const core = kubeConfigFromFile(kubeconfig).makeApiClient(CoreV1Api);
    await waitUntil(started, deadline, 'namespace default', async () => {
      await core.readNamespace({ name: 'default' });
      return true;
    });

    const processes = () => started.map((s) => s.process).reverse();
    const writeState = () => writeFile(path.join(dir, STATE_FILE), `${JSON.stringify({ version: binaries.version, server, kubeconfig, processes: processes() } satisfies ControlPlaneState, null, 2)}\n`);
    await writeState();
    if (detached) for (const { child } of started) child.unref();
    const restartApiServer = async (): Promise<void> => {
      const old = started.pop();
      if (old === undefined) throw new ControlPlaneStartError('kube-apiserver is not running');
      signal(old.process.pid, 'SIGKILL');
      await exited(old.process, 10_000);
      // Its certificates stay in --cert-dir, so clients that trust them reconnect unchanged. The
      // killed server's connections may hold the port for a moment: a start that cannot bind is tried again.
      const by = Date.now() + readyTimeoutMs;
      for (;;) {
        started.push(launch(dir, 'kube-apiserver', binaries.kubeApiserver, apiServerArgs, detached));
        try {
          await apiServerReady(by);
          break;
        } catch (err) {
          if (!(err instanceof ControlPlaneStartError && err.message.includes('address already in use')) || Date.now() > by) throw err;
          started.pop();
          await sleep(500);
        }
      }
      await writeState();
    };
    return { version: binaries.version, server, kubeconfig, get processes() { return processes(); }, dir, stop, restartApiServer };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface Started {
  readonly process: ControlPlaneProcess;
  readonly child: ChildProcess;
  readonly log: string;
}

function launch(dir: string, name: ComponentName, executable: string, args: readonly string[], detached: boolean): Started {
  const log = path.join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  try {
    const child = spawn(executable, args, { stdio: ['ignore', fd, fd], detached });
    // A failed spawn (e.g. ENOENT) reports through 'error' and an exit code; the wait loop sees the exit.
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new ControlPlaneStartError(`could not start ${executable}`);
    return { process: { name, pid: child.pid, executable }, child, log };
  } finally {
    closeSync(fd);
  }
}

/** Polls `ready` every 250 ms until it returns true; fails when a started process exits or the deadline passes. */
async function waitUntil(started: readonly Started[], deadline: number, what: string, ready: () => Promise<boolean>): Promise<void> {
  let lastError: unknown;
  for (;;) {
    const dead = started.find((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    if (dead !== undefined) {
      throw new ControlPlaneStartError(`${dead.process.name} exited (${String(dead.child.exitCode ?? dead.child.signalCode)}) while waiting for ${what}; ${await logTail(dead.log)}`);
    }
    try {
      if (await ready()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      const newest = started.at(-1);
      throw new ControlPlaneStartError(`timed out waiting for ${what}${detail}; ${newest === undefined ? '' : await logTail(newest.log)}`);
    }
    await sleep(250);
  }
}

async function logTail(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return `last lines of ${log}:\n${text.split('\n').slice(-30).join('\n')}`;
}

interface ApiServerFiles {
  readonly tokens: string;
  readonly serviceAccountPublicKey: string;
  readonly serviceAccountPrivateKey: string;
}

async function writeApiServerFiles(pki: string, adminToken: string): Promise<ApiServerFiles> {
  const files: ApiServerFiles = {
    tokens: path.join(pki, 'tokens.csv'),
    serviceAccountPublicKey: path.join(pki, 'service-account.pub'),
    serviceAccountPrivateKey: path.join(pki, 'service-account.key'),
  };
  // Token file columns: token, user name, uid, groups.
  await writeFile(files.tokens, `${adminToken},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });
  const { publicKey, privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  await writeFile(files.serviceAccountPublicKey, publicKey);
  await writeFile(files.serviceAccountPrivateKey, privateKey, { mode: 0o600 });
  return files;
}

function adminKubeconfigYaml(server: string, ca: Buffer, token: string): string {
  const name = 'arca-test';
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
    users: [{ name: ADMIN_USER, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: ADMIN_USER } }],
    'current-context': name,
  });
}

/** A client-node KubeConfig loaded from a kubeconfig file. */
export function kubeConfigFromFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

function httpsStatus(url: string, ca: Buffer, token: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = https.get(url, { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 5_000 }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('timeout', () => { request.destroy(); });
    request.on('error', () => { resolve(undefined); });
  });
}

/** Distinct free ports on 127.0.0.1, all held until every one is known so none repeats. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { resolve(server); });
  })));
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/**
 * Whether `proc` still runs as its own executable; a zombie or a reused pid counts as gone.
 * Without /proc (not Linux) only the pid can be checked.
 */
async function isRunning(proc: ControlPlaneProcess): Promise<boolean> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${proc.pid}/stat`, 'utf8');
  } catch {
    return !(await access('/proc/self/stat').then(() => true, () => false)) && pidExists(proc.pid);
  }
  // The state letter follows the parenthesised command name, which may itself hold spaces.
  if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
  const argv0 = (await readFile(`/proc/${proc.pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0];
  return argv0 === proc.executable;
}

async function exited(proc: ControlPlaneProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isRunning(proc)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
