import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, link, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig, type V1Volume } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backupPodVolume } from '../../agent/data-path.ts';
import { initRepository, openRepository } from '../../engine/index.ts';
import { MemoryLogger } from '../support/memory-logger.ts';
import { encodeBlob } from '../../repository/blob/blob-codec.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import { LEASES_PREFIX } from '../../repository/object-names.ts';
import { encodeTree, type TreeNode } from '../../repository/tree/tree.ts';
import { BackupRepositoryKind, PodVolumeBackupKind, PodVolumeRestoreKind, type PodVolumeBackup, type PodVolumeRestore } from '../../kube/api/kinds.ts';
import { NODE_LABEL } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds } from '../support/arca-kube.ts';
import { waitForLine, stopChild } from '../support/child-process.ts';
import { arcaOk, runArca, startArca } from '../support/cli.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { scanTree, asObject } from '../support/fs-tree.ts';
import { startS3Server } from '../support/s3-server.ts';

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
      '--kubeconfig', kubeTestEnv().kubeconfig, '--metrics-address', '127.0.0.1:0', '--cluster', 'test', '--max-concurrent', '2', '--pod-check-interval', '300ms']);
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

  async function startRestore(node: string, pod: { name: string; uid: string }, volume: string, snapshotID: string, repository = 'default'): Promise<{ name: string; restoreUID: string }> {
    const name = `pvr-${++seq}`;
    const restoreUID = `r-${seq}`;
    await restores.create(ns, {
      metadata: { name, labels: { [NODE_LABEL]: node } },
      spec: { node, pod: { namespace: ns, ...pod }, volume, repository, snapshotID, restoreUID },
    });
    return { name, restoreUID };
  }

  async function restore(node: string, pod: { name: string; uid: string }, volume: string, snapshotID: string, repository = 'default'): Promise<PodVolumeRestore> {
    return finalOf(restores, (await startRestore(node, pod, volume, snapshotID, repository)).name);
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

  /** A pod with a 512 MiB emptyDir on `node`, and a backup of it that has started. */
  async function runningBigBackup(node: string, backupSet: string): Promise<{ pod: { name: string; uid: string }; name: string }> {
    const pod = await createPod(node, [{ name: 'big', emptyDir: {} }], { big: 'kubernetes.io~empty-dir/big' });
    await bigVolume(pod.dirs.big ?? '', 512);
    const name = `pvb-${++seq}`;
    await backups.create(ns, { metadata: { name, labels: { [NODE_LABEL]: node } }, spec: { node, pod: { namespace: ns, ...pod }, volume: 'big', repository: 'default', backupSet } });
    await phaseReached(name, 'InProgress');
    return { pod, name };
  }

  async function repositoryChecksClean(): Promise<void> {
    await arcaOk(['check', '--repo', path.join(root, 'repo')], { env: { ARCA_PASSWORD: PASSWORD } });
  }

  /** The leases in the local repository (one an agent killed by SIGKILL left stays until it expires). */
  async function leases(): Promise<string[]> {
    return readdir(path.join(root, 'repo', LEASES_PREFIX)).catch(() => []);
  }

  test('spec.cancel stops a running backup (Canceled, no snapshot); the repository checks clean', async () => {
    const { name } = await runningBigBackup('node-a', 'set-2');
    await backups.mergePatch(ns, name, { spec: { cancel: true } });
    const canceled = await finalOf(backups, name);
    expect(canceled.status, canceled.status?.message).toMatchObject({ phase: 'Canceled' });
    expect(canceled.status?.snapshotID).toBeUndefined();
    await repositoryChecksClean();
  });

  test('an agent killed mid-backup (SIGKILL) takes the job up again when it is back: Completed on attempt 2', async () => {
    const { name } = await runningBigBackup('node-b', 'set-2');
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

  test('a job re-run after its snapshot was saved but not its status completes with that snapshot: no second one', async () => {
    // Node b's agent is down while the first run "happens": the PodVolumeBackup waits for it.
    const node = nodeOf('node-b');
    await stopChild(node.agent);
    const pod = await createPod('node-b', [{ name: 'cache', emptyDir: {} }], { cache: 'kubernetes.io~empty-dir/cache' });
    const volumeDir = pod.dirs.cache ?? '';
    await writeFile(path.join(volumeDir, 'f'), 'saved before the status was written\n');
    const name = `pvb-${++seq}`;
    const created = await backups.create(ns, {
      metadata: { name, labels: { [NODE_LABEL]: 'node-b' } },
      spec: { node: 'node-b', pod: { namespace: ns, name: pod.name, uid: pod.uid }, volume: 'cache', repository: 'default', backupSet: 'set-rerun' },
    });
    // The first run: its snapshot saved as the agent saves it, then the agent gone before the final status.
    const repo = await openRepository({ url: path.join(root, 'repo'), password: PASSWORD, cacheDir: path.join(root, 'test-cache') });
    let savedId: string;
    try {
      const { outcome } = await backupPodVolume({
        repo, volumeDir, signal: new AbortController().signal, logger: new MemoryLogger(), onProgress: () => undefined, tags: [],
        metadata: { cluster: 'test', namespace: ns, pod: pod.name, podUid: pod.uid, volume: 'cache', node: 'node-b', backupSet: 'set-rerun', podVolumeBackupUid: created.metadata.uid },
      });
      if (outcome.status !== 'completed') throw new Error('the backup did not complete');
      savedId = outcome.snapshotId;
    } finally {
      await repo.close();
    }
    await backups.replaceStatus({ ...created, status: { phase: 'InProgress', attempts: 1, startTimestamp: new Date().toISOString() } });
    // Changed since: a backup now would make a snapshot with another tree.
    await writeFile(path.join(volumeDir, 'g'), 'written after\n');

    node.agent = await startAgent('node-b', node.podsDir);
    const done = await finalOf(backups, name);
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed', attempts: 2, snapshotID: savedId, stats: { filesNew: 1, totalFilesProcessed: 1 } });
    const check = await openRepository({ url: path.join(root, 'repo'), password: PASSWORD, cacheDir: path.join(root, 'test-cache') });
    try {
      expect((await check.listSnapshots({ labels: { 'arca.dev/backup-set': 'set-rerun' } })).map((s) => s.id)).toEqual([savedId]);
    } finally {
      await check.close();
    }
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

  test('a pod rescheduled to another node with its PV (a new UID in the path) is backed up against its parent, reading no file again', async () => {
    const pvName = await boundClaim('data-r', { csi: { driver: 'test.csi.arca.dev', volumeHandle: 'h-r' } });
    const volumes = [{ name: 'data', persistentVolumeClaim: { claimName: 'data-r' } }];
    const first = await createPod('node-a', volumes, { data: `kubernetes.io~csi/${pvName}/mount` });
    await fillVolume(first.dirs.data ?? '');
    const before = await backup('node-a', first, 'data', { pvcName: 'data-r' });
    expect(before.status, before.status?.message).toMatchObject({ phase: 'Completed', stats: { filesNew: 4 } });

    // node-b's kubelet mounts the same PV for the new pod: the same files, under the new pod's UID.
    const second = await createPod('node-b', volumes);
    const mounted = path.join(nodeOf('node-b').podsDir, second.uid, 'volumes', 'kubernetes.io~csi', pvName, 'mount');
    await mkdir(path.dirname(mounted), { recursive: true });
    await rename(first.dirs.data ?? '', mounted);
    const after = await backup('node-b', second, 'data', { pvcName: 'data-r' });
    expect(after.status, after.status?.message).toMatchObject({
      phase: 'Completed', parentSnapshotID: before.status?.snapshotID, stats: { filesNew: 0, filesChanged: 0, filesUnmodified: 4, dataAdded: 0 },
    });
  });

  async function restorePhaseReached(name: string, phase: string): Promise<void> {
    while ((await restores.get(ns, name)).status?.phase !== phase) await sleep(50);
  }

  test('spec.cancel stops a running restore: Canceled, the failed marker and never the done one, restore-wait fails, no lease of its own left', async () => {
    const source = await createPod('node-a', [{ name: 'big', emptyDir: {} }], { big: 'kubernetes.io~empty-dir/big' });
    await bigVolume(source.dirs.big ?? '', 768);
    const saved = await backup('node-a', source, 'big', { backupSet: 'set-3' });
    expect(saved.status, saved.status?.message).toMatchObject({ phase: 'Completed' });
    await rm(source.dirs.big ?? '', { recursive: true });

    const target = await createPod('node-b', [{ name: 'big', emptyDir: {} }], { big: 'kubernetes.io~empty-dir/big' });
    const volume = target.dirs.big ?? '';
    const leasesBefore = await leases();
    const { name, restoreUID } = await startRestore('node-b', target, 'big', saved.status?.snapshotID ?? '');
    await restorePhaseReached(name, 'InProgress');
    await restores.mergePatch(ns, name, { spec: { cancel: true } });
    const canceled = await finalOf(restores, name);
    expect(canceled.status, canceled.status?.message).toMatchObject({ phase: 'Canceled' });
    expect(await readdir(path.join(volume, '.arca'))).toEqual([`${restoreUID}.failed`]);
    expect(await readFile(path.join(volume, '.arca', `${restoreUID}.failed`), 'utf8')).toMatch(/canceled/);
    // The pod's init container, as the webhook injects it: it fails with the reason instead of starting the app.
    const waited = await runArca(['restore-wait', '--restore-uid', restoreUID, '--timeout', '30s', volume]);
    expect(waited.code, waited.stderr).not.toBe(0);
    expect(waited.stderr).toMatch(/canceled/);
    expect(await leases()).toEqual(leasesBefore);
    await repositoryChecksClean();
  });

  test('a pod deleted while its volume is backed up stops the job: Failed with the reason, no snapshot, its lease released', async () => {
    const leasesBefore = await leases();
    const { pod, name } = await runningBigBackup('node-a', 'set-4');
    await core.deleteNamespacedPod({ namespace: ns, name: pod.name, gracePeriodSeconds: 0 });
    const done = await finalOf(backups, name);
    expect(done.status?.phase, done.status?.message).toBe('Failed');
    expect(done.status?.message).toMatch(new RegExp(`Pod ${ns}/${pod.name} is gone\\. The job stopped while running: no snapshot was written\\.`));
    expect(done.status?.snapshotID).toBeUndefined();
    expect(await leases()).toEqual(leasesBefore);
    await repositoryChecksClean();
  });

  /**
   * A snapshot written straight through the repository API, as the volume's root (Snapshot.root):
   * what a hostile or corrupted repository could hand the agent.
   */
  type Hostile = { readonly file: string; readonly content: string } | { readonly dir: string; readonly entries: readonly Hostile[] } | { readonly symlink: string; readonly target: string };

  async function hostileSnapshot(entries: readonly Hostile[]): Promise<string> {
    const repo = await openRepository({ url: path.join(root, 'repo'), password: PASSWORD, cacheDir: path.join(root, 'test-cache') });
    try {
      let inode = 1n;
      const meta = (name: string, mode: number): Omit<TreeNode, 'type' | 'subtree' | 'size' | 'content' | 'linkTarget' | 'rdev'> => ({
        name: Buffer.from(name), mode, uid: 0, gid: 0, mtimeNs: 1_700_000_000_000_000_000n, atimeNs: 1_700_000_000_000_000_000n, ctimeNs: 1_700_000_000_000_000_000n, inode: inode++, deviceId: 1n, links: 1,
      });
      const writer = new BlobWriter(repo);
      const writeTree = async (specs: readonly Hostile[]): Promise<Buffer> => {
        const nodes: TreeNode[] = [];
        for (const spec of specs) {
          if ('file' in spec) {
            const blob = encodeBlob(repo.keys, Buffer.from(spec.content), repo.config.compression.level);
            await writer.addIfNew('data', blob);
            nodes.push({ ...meta(spec.file, 0o644), type: 'file', size: spec.content.length, content: [blob.id] });
          } else if ('dir' in spec) {
            nodes.push({ ...meta(spec.dir, 0o755), type: 'dir', subtree: await writeTree(spec.entries) });
          } else {
            nodes.push({ ...meta(spec.symlink, 0o777), type: 'symlink', linkTarget: Buffer.from(spec.target) });
          }
        }
        const blob = encodeBlob(repo.keys, encodeTree({ nodes }), repo.config.compression.level);
        await writer.addIfNew('tree', blob);
        return blob.id;
      };
      const tree = await writeTree(entries);
      await writer.flush();
      return await repo.saveSnapshot({
        version: 1, time: new Date().toISOString(), tree: tree.toString('hex'), paths: ['/host_pods/old-uid/volumes/kubernetes.io~empty-dir/data'],
        root: { mode: 0o777, uid: 0, gid: 0, mtime: '1700000000000000000', atime: '1700000000000000000' },
        hostname: 'node-x', username: 'root', tags: [], program_version: 'test',
      });
    } finally {
      await repo.close();
    }
  }

  test('a hostile snapshot restored through the API writes nothing outside the volume', async () => {
    // Beside the volume, inside the pod's directory: what a "../" or a planted symlink would reach.
    const target = await createPod('node-b', [{ name: 'data', emptyDir: {} }], { data: 'kubernetes.io~empty-dir/data' });
    const volume = target.dirs.data ?? '';
    const beside = path.join(path.dirname(volume), 'sentinel');
    await mkdir(beside);
    const untouched = async (): Promise<void> => {
      expect(await readdir(beside)).toEqual([]);
      expect((await readdir(path.dirname(volume))).sort()).toEqual(['data', 'sentinel']);
    };

    // Names that climb out, or a symlink and a directory of one name: refused, and the pod is told why.
    const refused: Hostile[][] = [
      [{ dir: '..', entries: [{ dir: 'sentinel', entries: [{ file: 'pwned', content: 'x' }] }] }],
      [{ file: '../sentinel/pwned', content: 'x' }],
      [{ symlink: 'a', target: beside }, { dir: 'a', entries: [{ file: 'pwned', content: 'x' }] }],
    ];
    for (const entries of refused) {
      const done = await restore('node-b', target, 'data', await hostileSnapshot(entries));
      expect(done.status?.phase, done.status?.message).toBe('Failed');
      expect(done.status?.message).toMatch(/unsafe|corrupt/i);
      expect(await readdir(path.join(volume, '.arca'))).toEqual([`r-${seq}.failed`]);
      await untouched();
      await rm(path.join(volume, '.arca'), { recursive: true });
    }

    // Symlinks planted in the volume where the snapshot has a directory and the markers, and a
    // done marker inside the snapshot: the restore replaces the links and never counts that marker.
    await symlink(beside, path.join(volume, 'sub'));
    await symlink(beside, path.join(volume, '.arca'));
    const forged = `r-${seq + 1}`;
    const done = await restore('node-b', target, 'data', await hostileSnapshot([
      { dir: '.arca', entries: [{ file: forged, content: 'forged' }] },
      { dir: 'sub', entries: [{ file: 'pwned', content: 'inside the volume' }] },
      { symlink: 'root-link', target: '/' },
    ]));
    expect(done.status, done.status?.message).toMatchObject({ phase: 'Completed' });
    await untouched();
    expect((await lstat(path.join(volume, 'sub'))).isDirectory()).toBe(true);
    expect(await readFile(path.join(volume, 'sub', 'pwned'), 'utf8')).toBe('inside the volume');
    expect((await lstat(path.join(volume, '.arca'))).isDirectory()).toBe(true);
    expect(await readdir(path.join(volume, '.arca'))).toEqual([forged]);
    expect(await readFile(path.join(volume, '.arca', forged), 'utf8')).toBe('');
  });

  test('an S3 repository (s3rver): a backup on one node and its restore on the other, exact', async () => {
    const s3 = await startS3Server({ bucket: 'agent-test' });
    try {
      const url = `s3://${s3.bucket}/cluster`;
      const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
      await (await initRepository({ url, password: PASSWORD, backend: { s3: { endpoint: s3.endpoint, credentials } }, cacheDir: path.join(root, 's3-init-cache'), kdf: { fixedN: 1024 } })).close();
      await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's3-credentials' }, stringData: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } } });
      await new ResourceClient(admin, BackupRepositoryKind, 'test').create(ns, {
        metadata: { name: 's3' },
        spec: { url, passwordSecretRef: { name: 'repo-password', key: 'password' }, credentialsSecretRef: { name: 's3-credentials' }, s3: { endpoint: s3.endpoint, forcePathStyle: true } },
      });
      const source = await createPod('node-a', [{ name: 'data', emptyDir: {} }], { data: 'kubernetes.io~empty-dir/data' });
      await fillVolume(source.dirs.data ?? '');
      const saved = await backup('node-a', source, 'data', { repository: 's3' });
      expect(saved.status, saved.status?.message).toMatchObject({ phase: 'Completed', stats: { filesNew: 4 } });

      const target = await createPod('node-b', [{ name: 'data', emptyDir: {} }], { data: 'kubernetes.io~empty-dir/data' });
      const restored = await restore('node-b', target, 'data', saved.status?.snapshotID ?? '', 's3');
      expect(restored.status, restored.status?.message).toMatchObject({ phase: 'Completed' });
      const withoutMarkers = (scan: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(scan).filter(([p]) => !p.startsWith('.arca')));
      expect(withoutMarkers(asObject(await scanTree(target.dirs.data ?? '')))).toEqual(withoutMarkers(asObject(await scanTree(source.dirs.data ?? ''))));
      await arcaOk(['check', '--repo', url, '--read-data'], { env: { ARCA_PASSWORD: PASSWORD, ARCA_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } });
    } finally {
      await s3.stop();
    }
  });
});
