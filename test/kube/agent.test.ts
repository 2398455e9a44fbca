import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, link, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig, type V1Volume } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initRepository } from '../../engine/index.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, type PodVolumeBackup, type PodVolumeRestore } from '../../kube/api/kinds.ts';
import { NODE_LABEL } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds } from '../support/arca-kube.ts';
import { waitForLine, stopChild } from '../support/child-process.ts';
import { arcaOk, startArca } from '../support/cli.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { scanTree, asObject } from '../support/fs-tree.ts';

const PASSWORD = 'agent-test-password';
const FINAL = ['Completed', 'PartiallyFailed', 'Failed', 'Canceled'];
const isRoot = process.getuid?.() === 0;

interface SimulatedNode {
  readonly name: string;
  readonly podsDir: string;
  agent: ChildProcess;
}

describe.skipIf(!kubeAvailable)('arca agent on simulated nodes', () => {
  let admin: KubeConfig;
  let core: CoreV1Api;
  let ns: string;
  let root: string;
  let backups: ResourceClient<typeof PodVolumeBackupKind>;
  let restores: ResourceClient<typeof PodVolumeRestoreKind>;
  const nodes: SimulatedNode[] = [];
  let seq = 0;

  async function startAgent(name: string, podsDir: string): Promise<ChildProcess> {
    const agent = startArca(['agent', '--node', name, '--pods-dir', podsDir, '--cache-dir', path.join(root, `cache-${name}`), '--namespace', ns,
      '--kubeconfig', kubeTestEnv().kubeconfig, '--metrics-address', '127.0.0.1:0', '--cluster', 'test', '--max-concurrent', '2']);
    await waitForLine(`agent ${name}`, agent, /"msg":"(started)"/, 60_000);
    return agent;
  }

  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(CoreV1Api);
    await installCrds(admin);
    ns = await createTestNamespace(admin, 'agent');
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-agent-kube-'));
    const repoDir = path.join(root, 'repo');
    await (await initRepository({ url: repoDir, password: PASSWORD, kdf: { fixedN: 1024 } })).close();
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'repo-password' }, stringData: { password: PASSWORD } } });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'wrong-password' }, stringData: { password: 'not-it' } } });
    const repos = new ResourceClient(admin, BackupRepositoryKind, 'test');
    await repos.create(ns, { metadata: { name: 'default' }, spec: { url: repoDir, passwordSecretRef: { name: 'repo-password', key: 'password' } } });
    await repos.create(ns, { metadata: { name: 'wrong' }, spec: { url: repoDir, passwordSecretRef: { name: 'wrong-password', key: 'password' } } });
    await repos.create(ns, { metadata: { name: 'nowhere' }, spec: { url: path.join(root, 'no-repo'), passwordSecretRef: { name: 'repo-password', key: 'password' } } });
    backups = new ResourceClient(admin, PodVolumeBackupKind, 'test');
    restores = new ResourceClient(admin, PodVolumeRestoreKind, 'test');
    for (const name of ['node-a', 'node-b']) {
      const podsDir = path.join(root, name, 'pods');
      await mkdir(podsDir, { recursive: true });
      nodes.push({ name, podsDir, agent: await startAgent(name, podsDir) });
    }
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => stopChild(n.agent)));
    await rm(root, { recursive: true, force: true });
  });

  const nodeOf = (name: string): SimulatedNode => nodes.find((n) => n.name === name) ?? nodes[0] as SimulatedNode;

  /** A pod scheduled to `node`, as the API server has it, and the kubelet's directories for its volumes. */
  async function createPod(node: string, volumes: V1Volume[], dirs: Record<string, string> = {}): Promise<{ name: string; uid: string; dirs: Record<string, string> }> {
    const name = `pod-${++seq}`;
    const pod = await core.createNamespacedPod({ namespace: ns, body: { metadata: { name }, spec: { nodeName: node, containers: [{ name: 'app', image: 'app' }], volumes } } });
    const uid = pod.metadata?.uid ?? '';
    const made: Record<string, string> = {};
    for (const [volume, rel] of Object.entries(dirs)) {
      made[volume] = path.join(nodeOf(node).podsDir, uid, 'volumes', rel);
      await mkdir(made[volume], { recursive: true });
    }
    return { name, uid, dirs: made };
  }

  async function boundClaim(claim: string, source: object): Promise<string> {
    const pv = `pv-${ns}-${claim}`;
    await core.createPersistentVolume({ body: { metadata: { name: pv }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], claimRef: { namespace: ns, name: claim }, ...source } } });
    await core.createNamespacedPersistentVolumeClaim({ namespace: ns, body: { metadata: { name: claim }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, volumeName: pv } } });
    return pv;
  }

  async function backup(node: string, pod: { name: string; uid: string }, volume: string, extra: Partial<PodVolumeBackup['spec']> = {}): Promise<PodVolumeBackup> {
    const name = `pvb-${++seq}`;
    await backups.create(ns, {
      metadata: { name, labels: { [NODE_LABEL]: node } },
      spec: { node, pod: { namespace: ns, ...pod }, volume, repository: 'default', backupSet: 'set-1', ...extra },
    });
    return finalOf(backups, name);
  }

  async function restore(node: string, pod: { name: string; uid: string }, volume: string, snapshotID: string): Promise<PodVolumeRestore> {
    const name = `pvr-${++seq}`;
    await restores.create(ns, {
      metadata: { name, labels: { [NODE_LABEL]: node } },
      spec: { node, pod: { namespace: ns, ...pod }, volume, repository: 'default', snapshotID, restoreUID: `r-${seq}` },
    });
    return finalOf(restores, name);
  }

  async function finalOf<K extends typeof PodVolumeBackupKind | typeof PodVolumeRestoreKind>(client: ResourceClient<K>, name: string): ReturnType<ResourceClient<K>['get']> {
    for (;;) {
      const object = await client.get(ns, name);
      if (FINAL.includes(object.status?.phase ?? '')) return object;
      await sleep(200);
    }
  }

  async function fillVolume(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'sub', 'deep'), { recursive: true });
    await writeFile(path.join(dir, 'a.txt'), 'hello\n');
    await writeFile(path.join(dir, 'sub', 'deep', 'big.bin'), Buffer.alloc(3 << 20, 7));
    await writeFile(path.join(dir, 'odd name \n é'), 'odd');
    await link(path.join(dir, 'a.txt'), path.join(dir, 'sub', 'hardlink'));
    await symlink('/etc/passwd', path.join(dir, 'link-out'));
    await chmod(path.join(dir, 'sub'), 0o750);
    await chmod(path.join(dir, 'a.txt'), 0o600);
    if (isRoot) await chown(path.join(dir, 'a.txt'), 1234, 4321);
    await utimes(path.join(dir, 'sub', 'deep'), 1_600_000_000.123456, 1_600_000_000.123456);
    await utimes(dir, 1_500_000_000, 1_500_000_000);
  }

  test('each agent backs up only its own node\'s volumes; a restore on the other node is exact; the next backup finds its parent', async () => {
    await boundClaim('data-a', { csi: { driver: 'test.csi.arca.dev', volumeHandle: 'h-a' } });
    const pvName = `pv-${ns}-data-a`;
    const podA = await createPod('node-a', [{ name: 'cache', emptyDir: {} }, { name: 'data', persistentVolumeClaim: { claimName: 'data-a' } }],
      { cache: 'kubernetes.io~empty-dir/cache', data: `kubernetes.io~csi/${pvName}/mount` });
    const podB = await createPod('node-b', [{ name: 'cache', emptyDir: {} }], { cache: 'kubernetes.io~empty-dir/cache' });
    await fillVolume(podA.dirs.data ?? '');
    await writeFile(path.join(podA.dirs.cache ?? '', 'c'), 'cache of a');
    await writeFile(path.join(podB.dirs.cache ?? '', 'c'), 'cache of b');

    const [data, cacheA, cacheB] = await Promise.all([
      backup('node-a', podA, 'data', { pvcName: 'data-a' }),
      backup('node-a', podA, 'cache'),
      backup('node-b', podB, 'cache'),
    ]);
    for (const done of [data, cacheA, cacheB]) expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', attempts: 1 });
    expect(data.status?.stats).toMatchObject({ filesNew: 4, totalBytesProcessed: (3 << 20) + 6 + 6 + 3 });
    expect(data.status?.progress).toMatchObject({ percent: 100 });

    // Unchanged: nothing is read again, nothing added but the snapshot's own trees.
    const unchanged = await backup('node-a', podA, 'data', { pvcName: 'data-a' });
    expect(unchanged.status).toMatchObject({ phase: 'Completed', parentSnapshotID: data.status?.snapshotID, stats: { filesNew: 0, filesChanged: 0, filesUnmodified: 4 } });
    expect(unchanged.status?.stats?.dataAdded).toBeLessThan(4 << 10);

    // The pod moves to node-b (a new pod, a new UID): restore there, then back it up again.
    const moved = await createPod('node-b', [{ name: 'data', persistentVolumeClaim: { claimName: 'data-a' } }], { data: `kubernetes.io~csi/${pvName}/mount` });
    const restored = await restore('node-b', moved, 'data', data.status?.snapshotID ?? '');
    expect(restored.status, restored.status?.message).toMatchObject({ phase: 'Completed' });
    expect(await readdir(path.join(moved.dirs.data ?? '', '.arca'))).toEqual([`r-${seq}`]);
    const withoutMarkers = (scan: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(scan).filter(([p]) => !p.startsWith('.arca')));
    expect(withoutMarkers(asObject(await scanTree(moved.dirs.data ?? '')))).toEqual(withoutMarkers(asObject(await scanTree(podA.dirs.data ?? ''))));

    const again = await backup('node-b', moved, 'data', { pvcName: 'data-a' });
    expect(again.status).toMatchObject({ phase: 'Completed', parentSnapshotID: unchanged.status?.snapshotID });
    expect(again.status?.stats?.dataAdded).toBeLessThan(64 << 10);
  });

  async function bigVolume(dir: string, mib: number): Promise<void> {
    for (let i = 0; i < mib / 16; i++) await writeFile(path.join(dir, `part-${i}`), randomBytes(16 << 20));
  }

  async function phaseReached(name: string, phase: string): Promise<void> {
    while ((await backups.get(ns, name)).status?.phase !== phase) await sleep(50);
  }

  async function repositoryChecksClean(): Promise<void> {
    await arcaOk(['check', '--repo', path.join(root, 'repo')], { env: { ARCA_PASSWORD: PASSWORD } });
  }

  test('spec.cancel stops a running backup (Canceled, no snapshot); the repository checks clean', async () => {
    const pod = await createPod('node-a', [{ name: 'big', emptyDir: {} }], { big: 'kubernetes.io~empty-dir/big' });
    await bigVolume(pod.dirs.big ?? '', 512);
    const name = `pvb-${++seq}`;
    await backups.create(ns, { metadata: { name, labels: { [NODE_LABEL]: 'node-a' } }, spec: { node: 'node-a', pod: { namespace: ns, ...pod }, volume: 'big', repository: 'default', backupSet: 'set-2' } });
    await phaseReached(name, 'InProgress');
    await backups.mergePatch(ns, name, { spec: { cancel: true } });
    const canceled = await finalOf(backups, name);
    expect(canceled.status, canceled.status?.message).toMatchObject({ phase: 'Canceled' });
    expect(canceled.status?.snapshotID).toBeUndefined();
    await repositoryChecksClean();
  });

  test('an agent killed mid-backup (SIGKILL) takes the job up again when it is back: Completed on attempt 2', async () => {
    const pod = await createPod('node-b', [{ name: 'big', emptyDir: {} }], { big: 'kubernetes.io~empty-dir/big' });
    await bigVolume(pod.dirs.big ?? '', 512);
    const name = `pvb-${++seq}`;
    await backups.create(ns, { metadata: { name, labels: { [NODE_LABEL]: 'node-b' } }, spec: { node: 'node-b', pod: { namespace: ns, ...pod }, volume: 'big', repository: 'default', backupSet: 'set-2' } });
    await phaseReached(name, 'InProgress');
    const node = nodeOf('node-b');
    const exited = new Promise((resolve) => { node.agent.once('exit', resolve); });
    node.agent.kill('SIGKILL');
    await exited;
    expect((await backups.get(ns, name)).status?.phase).toBe('InProgress');
    node.agent = await startAgent('node-b', node.podsDir);
    const done = await finalOf(backups, name);
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', attempts: 2 });
    await repositoryChecksClean();
  });

  test('bad input ends Failed with a message that says what is wrong', async () => {
    const podA = await createPod('node-a', [{ name: 'cache', emptyDir: {} }, { name: 'token', secret: { secretName: 'repo-password' } }],
      { cache: 'kubernetes.io~empty-dir/cache', token: 'kubernetes.io~secret/token' });
    const cases: [Promise<PodVolumeBackup>, RegExp][] = [
      [backup('node-b', podA, 'cache'), /runs on node node-a, not on node-b/],
      [backup('node-a', { name: 'no-such-pod', uid: 'u-1' }, 'cache'), /no-such-pod is gone/],
      [backup('node-a', podA, 'token'), /secret volume, which is never backed up/],
      [backup('node-a', podA, 'cache', { repository: 'wrong' }), /password in Secret wrong-password .* does not open/],
      [backup('node-a', podA, 'cache', { repository: 'nowhere' }), /There is no Arca repository at/],
      [backup('node-a', podA, 'cache', { repository: 'missing' }), /BackupRepository missing does not exist/],
    ];
    for (const [done, message] of cases) {
      const object = await done;
      expect(object.status?.phase, object.status?.message).toBe('Failed');
      expect(object.status?.message).toMatch(message);
    }
  });

  test('a changed Secret is used by the next job, without restarting the agent', async () => {
    const pod = await createPod('node-a', [{ name: 'cache', emptyDir: {} }], { cache: 'kubernetes.io~empty-dir/cache' });
    await writeFile(path.join(pod.dirs.cache ?? '', 'f'), 'x');
    await core.replaceNamespacedSecret({ namespace: ns, name: 'wrong-password', body: { metadata: { name: 'wrong-password' }, stringData: { password: 'still-not-it' } } });
    expect((await backup('node-a', pod, 'cache', { repository: 'wrong' })).status?.phase).toBe('Failed');
    await core.replaceNamespacedSecret({ namespace: ns, name: 'wrong-password', body: { metadata: { name: 'wrong-password' }, stringData: { password: PASSWORD } } });
    const fixed = await backup('node-a', pod, 'cache', { repository: 'wrong' });
    expect(fixed.status, fixed.status?.message).toMatchObject({ phase: 'Completed' });
    // And the other way: the repository is open, yet a Secret changed to a wrong password is seen.
    await core.replaceNamespacedSecret({ namespace: ns, name: 'wrong-password', body: { metadata: { name: 'wrong-password' }, stringData: { password: 'not-it' } } });
    expect((await backup('node-a', pod, 'cache', { repository: 'wrong' })).status?.message).toMatch(/does not open/);
  });
});
