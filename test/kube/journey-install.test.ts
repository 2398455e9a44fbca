import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { initRepository } from '../../engine/index.ts';
import { findControlPlaneBinaries, kubeCacheDir, kubeConfigFromFile, startControlPlane, type ControlPlane } from '../../scripts/kube/control-plane.ts';
import { MANIFESTS } from '../support/arca-kube.ts';
import { createTestNamespace, kubeAvailable, serviceAccountKubeConfig } from '../support/control-plane.ts';
import { deployApp } from '../support/journey-app.ts';
import { final, SimulatedCluster } from '../support/simulated-cluster.ts';

// Journey 1 as an operator installs Arca: `kubectl apply -k manifests/` on a fresh control plane of
// its own (CRDs, namespace, RBAC, the DaemonSet, the Deployment, the webhook configuration). No
// kubelet runs the DaemonSet's and Deployment's pods, so the simulated cluster runs the agents and
// the controller as processes with the tokens of the manifests' service accounts: whatever they do
// is what that RBAC allows. Then the first backup.

const PASSWORD = 'journey-install';
const NODES = ['node-a', 'node-b', 'node-c'];

describe.skipIf(!kubeAvailable)('journey 1: install with kubectl apply -k manifests/, then the first backup', () => {
  let dir: string;
  let plane: ControlPlane;
  let cluster: SimulatedCluster | undefined;
  let kubectl: (...args: string[]) => Promise<string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'arca-journey-install-'));
    const binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
    plane = await startControlPlane({ dir: path.join(dir, 'control-plane'), binaries });
    kubectl = async (...args) => (await promisify(execFile)(binaries.kubectl, [`--kubeconfig=${plane.kubeconfig}`, ...args])).stdout;
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && cluster !== undefined) console.error(`What Arca's processes said:\n${cluster.report()}`);
  });
  afterAll(async () => {
    await cluster?.stop();
    await plane.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the manifests applied; the agents and controller under their RBAC back up an annotated app', async () => {
    const admin = kubeConfigFromFile(plane.kubeconfig);
    await kubectl('apply', '-k', MANIFESTS);
    await kubectl('wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s');
    expect(await kubectl('get', 'daemonset,deployment', '-n', 'arca-system', '-o', 'name')).toBe('daemonset.apps/arca-agent\ndeployment.apps/arca-controller\n');

    const processKubeconfigs = { agent: path.join(dir, 'agent.kubeconfig'), controller: path.join(dir, 'controller.kubeconfig') };
    for (const who of ['agent', 'controller'] as const) {
      await writeFile(processKubeconfigs[who], (await serviceAccountKubeConfig(admin, 'arca-system', `arca-${who}`)).exportConfig(), { mode: 0o600 });
    }
    cluster = new SimulatedCluster(admin, {
      kubeconfig: plane.kubeconfig, root: path.join(dir, 'nodes'), namespace: 'arca-system', cluster: 'install',
      processKubeconfigs, webhookConfiguration: 'arca-restore',
    });
    await cluster.install(NODES);

    const repoDir = path.join(dir, 'repository');
    await (await initRepository({ url: repoDir, password: PASSWORD, kdf: { fixedN: 1024 } })).close();
    await cluster.addRepository('default', PASSWORD, { url: repoDir });
    const appNs = await createTestNamespace(admin, 'shop');
    await deployApp(cluster, appNs, { db: 'node-a', web: 'node-c' });

    await cluster.backups.create('arca-system', { metadata: { name: 'first' }, spec: { repository: 'default', includedNamespaces: [appNs] } });
    const done = await final(cluster.backups, 'arca-system', 'first');
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2, failed: 0 } });
    // What `kubectl get podvolumebackups -o wide` shows the operator: each volume with its progress and size.
    const [header = '', ...lines] = (await kubectl('get', 'podvolumebackups', '-n', 'arca-system', '-o', 'wide', '--sort-by=.spec.volume')).trim().split('\n');
    const columns = header.split(/\s{2,}/);
    const rows = lines.map((line) => Object.fromEntries(line.split(/\s{2,}/).map((value, i) => [columns[i] ?? i, value])));
    expect(rows.map((r) => [r.PHASE, r.NODE, r.VOLUME, r.PROGRESS])).toEqual([['Completed', 'node-c', 'cache', '100'], ['Completed', 'node-a', 'data', '100']]);
    for (const row of rows) expect(Number(row['BYTES DONE'])).toBeGreaterThan(0);
  }, 300_000);
});
