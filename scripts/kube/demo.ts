/**
 * `npm run demo:kubernetes`: Arca's first two journeys on a throw-away control plane, narrated.
 * Starts kube-apiserver and etcd, installs the CRDs, runs the controller and an agent on each of
 * two simulated nodes (this machine plays their kubelets: nothing runs in containers), backs up a
 * small generated app, loses its volumes, restores it through the webhook and `arca restore-wait`,
 * shows what `kubectl get` shows at each step, and removes everything it made.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { arcaOk } from '../../test/support/cli.ts';
import { until } from '../../test/support/controller-process.ts';
import { deployApp, reapplyApp, scanVolumes, startRestore } from '../../test/support/journey-app.ts';
import { final, SimulatedCluster } from '../../test/support/simulated-cluster.ts';
import {
  ControlPlaneBinariesMissingError, findControlPlaneBinaries, kubeCacheDir, kubeConfigFromFile, startControlPlane, type ControlPlane,
} from './control-plane.ts';

const PASSWORD = 'arca-demo-password';
const NODES = ['node-a', 'node-b'];
const CRDS = fileURLToPath(new URL('../../manifests/crds', import.meta.url));

const step = (text: string): void => { console.log(`\n\x1b[1m==> ${text}\x1b[0m`); };

async function goAvailable(): Promise<boolean> {
  return promisify(execFile)('go', ['version']).then(() => true, () => false);
}

async function main(): Promise<void> {
  let binaries;
  try {
    binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
  } catch (err) {
    if (!(err instanceof ControlPlaneBinariesMissingError)) throw err;
    console.error(`The demo needs a Kubernetes API server and etcd, built once per machine from their Go sources.\n${err.message}`);
    if (!await goAvailable()) console.error('Go is not installed: get Go 1.26 or newer from https://go.dev/dl/ (or your package manager), then run that command.');
    process.exitCode = 1;
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-demo-'));
  let plane: ControlPlane | undefined;
  let cluster: SimulatedCluster | undefined;
  try {
    step(`Starting a Kubernetes ${binaries.version} control plane (kube-apiserver + etcd; no scheduler, no kubelets)`);
    plane = await startControlPlane({ dir: path.join(dir, 'control-plane'), binaries });
    const kc = kubeConfigFromFile(plane.kubeconfig);
    const kubectl = async (...args: string[]): Promise<void> => {
      const { stdout } = await promisify(execFile)(binaries.kubectl, [`--kubeconfig=${plane?.kubeconfig ?? ''}`, ...args]);
      console.log(`$ kubectl ${args.join(' ')}\n${stdout.trimEnd()}`);
    };

    step('Installing Arca: the CRDs, then the controller and one agent per node, run beside the API server');
    await kubectl('apply', '--server-side', '-k', CRDS);
    await kubectl('wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s');
    await createNamespace(kc, 'arca-system');
    cluster = new SimulatedCluster(kc, { kubeconfig: plane.kubeconfig, root: path.join(dir, 'nodes'), namespace: 'arca-system', cluster: 'demo' });
    await cluster.install(NODES);

    step('A repository (a local directory here) and its password Secret');
    const repoDir = path.join(dir, 'repository');
    await arcaOk(['init', '--repo', repoDir], { env: { ARCA_PASSWORD: PASSWORD } });
    await cluster.addRepository('default', PASSWORD, { url: repoDir });
    const { repositories } = cluster;
    await until(async () => ((await repositories.get('arca-system', 'default')).status?.phase === 'Ready' ? true : undefined));
    await kubectl('-n', 'arca-system', 'get', 'backuprepositories');

    step('Journey 1: an app in namespace shop — a database pod on a claim (node-a), a web pod with an emptyDir (node-b), both annotated backup.arca.dev/backup-volumes');
    await createNamespace(kc, 'shop');
    const app = await deployApp(cluster, 'shop', { db: 'node-a', web: 'node-b' }, 1);
    const before = await scanVolumes(app.volumes);
    await kubectl('-n', 'shop', 'get', 'pods', '-o', 'wide');

    step('A VolumeBackup of the namespace: one PodVolumeBackup per annotated volume, run by that node\'s agent');
    await cluster.backups.create('arca-system', { metadata: { name: 'first' }, spec: { repository: 'default', includedNamespaces: ['shop'] } });
    await final(cluster.backups, 'arca-system', 'first');
    await kubectl('-n', 'arca-system', 'get', 'volumebackups');
    await kubectl('-n', 'arca-system', 'get', 'podvolumebackups', '-o', 'wide');

    step('Journey 2: disaster — the pods are deleted and their volumes\' data is gone from both nodes');
    for (const pod of (await cluster.core.listNamespacedPod({ namespace: 'shop' })).items) {
      await cluster.core.deleteNamespacedPod({ namespace: 'shop', name: pod.metadata?.name ?? '', gracePeriodSeconds: 0 });
    }
    for (const node of NODES) {
      await rm(cluster.podsDir(node), { recursive: true });
      await mkdir(cluster.podsDir(node));
    }

    step('A VolumeRestore of the backup; the controller labels the namespace so the webhook sees its new pods');
    await startRestore(cluster, 'after-disaster', { volumeBackup: 'first' }, 'shop');
    await kubectl('-n', 'arca-system', 'get', 'volumerestores');

    step('The app is applied again (new UIDs, a new ReplicaSet), each pod on the other node: each is held by its arca-restore-wait init container');
    const restored = await reapplyApp(cluster, 'shop', { db: 'node-b', web: 'node-a' }, '77aa');
    await kubectl('-n', 'shop', 'get', 'pods', '-o', 'wide');
    await kubectl('-n', 'shop', 'get', 'pod', 'db-0', '-o', 'jsonpath={.spec.initContainers[0].name}: {.spec.initContainers[0].args}{"\\n"}');

    step('The agents restore the volumes; arca-restore-wait exits 0 and the pods start');
    for (const result of await restored.initContainers) process.stdout.write(result.stdout);
    await final(cluster.restores, 'arca-system', 'after-disaster');
    await kubectl('-n', 'arca-system', 'get', 'podvolumerestores', '-o', 'wide');
    await kubectl('-n', 'arca-system', 'get', 'volumerestores');
    await kubectl('-n', 'shop', 'get', 'pods');

    const after = await scanVolumes(Object.fromEntries(restored.volumes));
    const same = [...before].every(([volume, tree]) => JSON.stringify(tree, jsonBigInt) === JSON.stringify(after.get(volume), jsonBigInt));
    step(same
      ? `Every file is back byte for byte, with its modes, owners, times, hard links and symlinks (${[...before.values()].reduce((n, t) => n + Object.keys(t).length, 0)} entries compared).`
      : 'The restored volumes differ from what was backed up: please report this.');
    if (!same) process.exitCode = 1;
  } finally {
    step('Cleaning up: stopping Arca\'s processes and the control plane, removing their files');
    await cluster?.stop();
    await plane?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

function jsonBigInt(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

await main();
