// The app the journeys back up and restore: a StatefulSet's database pod on a bound claim and a
// Deployment's web pod with an emptyDir, each naming its volume in the backup annotation, and
// files for them that exercise what a restore must keep (modes, times, hard links, symlinks).
// No vitest import: the demo script uses this too.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { VolumeRestore } from '../../kube/api/kinds.ts';
import { RESTORE_INIT_CONTAINER } from '../../kube/api/labels.ts';
import type { RunResult } from './cli.ts';
import { until } from './controller-process.ts';
import { asObject, scanTree, type ScannedEntry } from './fs-tree.ts';
import type { S3Server } from './s3-server.ts';
import { final, type SimulatedCluster, type VolumeDirs } from './simulated-cluster.ts';

const statefulSetOwner = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'sts-db', controller: true }];
const replicaSetOwner = (hash: string) => [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${hash}`, uid: `rs-web-${hash}`, controller: true }];

/** The StatefulSet's pod `db-0`, its volume `data` on claim `data-db-0`. */
export function dbPod(): V1Pod {
  return {
    metadata: { name: 'db-0', ownerReferences: statefulSetOwner, annotations: { 'backup.arca.dev/backup-volumes': 'data' } },
    spec: {
      containers: [{ name: 'db', image: 'postgres:17', volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }] }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }],
    },
  };
}

/** A pod of the Deployment's ReplicaSet `web-<hash>` (a generated name), its volume `cache` an emptyDir. */
export function webPod(hash: string): V1Pod {
  return {
    metadata: { generateName: `web-${hash}-`, labels: { app: 'web', 'pod-template-hash': hash }, ownerReferences: replicaSetOwner(hash), annotations: { 'backup.arca.dev/backup-volumes': 'cache' } },
    spec: {
      containers: [{ name: 'web', image: 'nginx:1', volumeMounts: [{ name: 'cache', mountPath: '/cache' }] }],
      volumes: [{ name: 'cache', emptyDir: {} }],
    },
  };
}

/** The persistent volume bound to the database's claim in `namespace`; returns the kubelet's directories of the database pod's volumes. */
export async function createDatabaseClaim(core: CoreV1Api, namespace: string): Promise<VolumeDirs> {
  const pvName = `pv-${namespace}-data-db-0`;
  await core.createPersistentVolume({ body: { metadata: { name: pvName }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], claimRef: { namespace, name: 'data-db-0' }, csi: { driver: 'test.csi.arca.dev', volumeHandle: `${namespace}-db-0` } } } });
  await core.createNamespacedPersistentVolumeClaim({ namespace, body: { metadata: { name: 'data-db-0' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, volumeName: pvName } } });
  return databaseDirs(namespace);
}

/** The kubelet's directories of the database pod's volumes (its PV's CSI mount). */
export function databaseDirs(namespace: string): VolumeDirs {
  return { data: `kubernetes.io~csi/pv-${namespace}-data-db-0/mount` };
}

export const webDirs: VolumeDirs = { cache: 'kubernetes.io~empty-dir/cache' };

/** A database's files: nested directories, modes, old mtimes, a hard link, a symlink, a few MiB. */
export async function fillDatabase(dir: string, mib = 3): Promise<void> {
  await mkdir(path.join(dir, 'base', '16384'), { recursive: true });
  await mkdir(path.join(dir, 'pg_wal'));
  await writeFile(path.join(dir, 'PG_VERSION'), '17\n');
  await writeFile(path.join(dir, 'base', '16384', '2619'), randomBytes(mib << 20));
  await writeFile(path.join(dir, 'pg_wal', '000000010000000000000001'), randomBytes(256 << 10));
  await writeFile(path.join(dir, 'postgresql.conf'), 'shared_buffers = 128MB\n');
  await link(path.join(dir, 'postgresql.conf'), path.join(dir, 'base', 'conf-link'));
  await symlink('../pg_wal', path.join(dir, 'base', 'wal'));
  await chmod(path.join(dir, 'base'), 0o700);
  await chmod(path.join(dir, 'postgresql.conf'), 0o600);
  await utimes(path.join(dir, 'PG_VERSION'), 1_600_000_000.25, 1_600_000_000.25);
  await utimes(path.join(dir, 'base', '16384'), 1_650_000_000, 1_650_000_000);
  await utimes(dir, 1_500_000_000, 1_500_000_000);
}

export async function fillCache(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'thumbs'));
  for (let i = 0; i < 20; i++) await writeFile(path.join(dir, 'thumbs', `t-${i}.png`), randomBytes(1000 + i * 37));
  await writeFile(path.join(dir, 'index.html'), '<h1>cached</h1>\n');
  await chmod(path.join(dir, 'index.html'), 0o640);
  await utimes(path.join(dir, 'thumbs'), 1_700_000_000, 1_700_000_000);
}

/** The database at work between two backups: a new WAL segment and a rewritten page. */
export async function writeToDatabase(dir: string, generation: number): Promise<void> {
  await writeFile(path.join(dir, 'pg_wal', `00000001000000000000000${(generation + 1).toString(16)}`), randomBytes(128 << 10));
  await writeFile(path.join(dir, 'base', '16384', '2619'), randomBytes(1 << 20), { flag: 'r+' });
}

/**
 * Creates VolumeRestore `name` and resolves once it is InProgress and the webhook holds new pods
 * of `namespace` (its caches catch up a moment after the restore's status: dry runs until then).
 */
export async function startRestore(cluster: SimulatedCluster, name: string, spec: VolumeRestore['spec'], namespace: string): Promise<VolumeRestore> {
  await cluster.restores.create(cluster.namespace, { metadata: { name }, spec });
  const restore = await until(async () => {
    const r = await cluster.restores.get(cluster.namespace, name);
    return r.status?.phase === 'InProgress' ? r : undefined;
  });
  await until(async () => {
    const dry = await cluster.core.createNamespacedPod({ namespace, body: dbPod(), dryRun: 'All' });
    return dry.spec?.initContainers?.[0]?.name === RESTORE_INIT_CONTAINER ? true : undefined;
  });
  return restore;
}

export interface ReappliedApp {
  /** The pods as created (the webhook's changes in them), not yet scheduled. */
  readonly db: V1Pod;
  readonly web: V1Pod;
  /** The restored volumes' directories on their new nodes, by volume name. */
  readonly volumes: ReadonlyMap<string, string>;
  /** The outcome of each pod's arca-restore-wait. */
  readonly initContainers: Promise<RunResult[]>;
}

/**
 * The app applied again in `namespace` while a restore holds it: the StatefulSet's pod (same name,
 * new UID) and a pod of the Deployment's new ReplicaSet `web-<hash>` (a new generated name); each
 * scheduled to its node, which mounts the (empty) volumes and starts arca-restore-wait.
 */
export async function reapplyApp(cluster: SimulatedCluster, namespace: string, nodes: { db: string; web: string }, hash: string): Promise<ReappliedApp> {
  const db = await cluster.core.createNamespacedPod({ namespace, body: dbPod() });
  const web = await cluster.core.createNamespacedPod({ namespace, body: webPod(hash) });
  const volumes = new Map<string, string>();
  const waiting: Promise<RunResult>[] = [];
  for (const [pod, node, dirs] of [[db, nodes.db, databaseDirs(namespace)], [web, nodes.web, webDirs]] as const) {
    const held = await cluster.startHeldPod(pod, node, dirs);
    for (const [volume, dir] of Object.entries(held.volumes)) volumes.set(volume, dir);
    waiting.push(held.initContainer);
  }
  return { db, web, volumes, initContainers: Promise.all(waiting) };
}

export interface RestoredApp {
  /** The VolumeRestore once it ended. */
  readonly restore: VolumeRestore;
  /** What each pod's arca-restore-wait ended with. */
  readonly initContainers: readonly RunResult[];
  /** The restored volumes' trees, by volume name. */
  readonly trees: ReadonlyMap<string, Record<string, ScannedEntry>>;
}

/**
 * A restore of the whole app, start to end: VolumeRestore `name`, the app re-applied in
 * `namespace` (its claim made first when the restore maps the app to a new namespace) onto the
 * given nodes, the init containers' outcome, and what the volumes hold once the restore ended.
 */
export async function restoreApp(
  cluster: SimulatedCluster, name: string, spec: VolumeRestore['spec'], namespace: string, nodes: { db: string; web: string },
): Promise<RestoredApp> {
  if (spec.namespaceMapping !== undefined) await createDatabaseClaim(cluster.core, namespace);
  await startRestore(cluster, name, spec, namespace);
  const app = await reapplyApp(cluster, namespace, nodes, name.slice(0, 6).replace(/[^a-z0-9]/g, 'x'));
  const initContainers = await app.initContainers;
  const restore = await final(cluster.restores, cluster.namespace, name);
  const trees = new Map<string, Record<string, ScannedEntry>>();
  for (const [volume, dir] of app.volumes) trees.set(volume, asObject(await scanTree(dir)));
  return { restore, initContainers, trees };
}

/** The trees of the app's volumes (by volume name) as they are now, to compare a restore with. */
export async function scanVolumes(volumes: Readonly<Record<string, string>>): Promise<Map<string, Record<string, ScannedEntry>>> {
  const trees = new Map<string, Record<string, ScannedEntry>>();
  for (const [volume, dir] of Object.entries(volumes)) trees.set(volume, asObject(await scanTree(dir)));
  return trees;
}

/** A repository under `prefix` in the bucket of `server`, reached at `endpoint` (the server's, or a proxy's), as a BackupRepository names it and as the CLI reaches it. */
export function s3Repository(server: S3Server, endpoint: string, prefix: string, password: string): {
  readonly spec: { url: string; s3: { endpoint: string; region: string; forcePathStyle: boolean } };
  readonly credentials: Record<string, string>;
  readonly cliEnv: Record<string, string>;
} {
  const url = `s3://${server.bucket}/${prefix}`;
  const credentials = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
  return {
    spec: { url, s3: { endpoint, region: 'us-east-1', forcePathStyle: true } },
    credentials,
    cliEnv: { ...credentials, ARCA_REPOSITORY: url, ARCA_S3_ENDPOINT: endpoint, AWS_REGION: 'us-east-1', ARCA_PASSWORD: password },
  };
}

export interface DeployedApp {
  readonly db: V1Pod;
  readonly web: V1Pod;
  /** The volumes' directories on their nodes, by volume name (data, cache). */
  readonly volumes: Record<string, string>;
}

/** The app running in `namespace`, the database on `nodes.db` and the web pod on `nodes.web`, its volumes filled. */
export async function deployApp(cluster: SimulatedCluster, namespace: string, nodes: { db: string; web: string }, databaseMiB?: number): Promise<DeployedApp> {
  const db = await cluster.runPod(namespace, nodes.db, dbPod(), await createDatabaseClaim(cluster.core, namespace));
  const web = await cluster.runPod(namespace, nodes.web, webPod('5d9f'), webDirs);
  await fillDatabase(db.volumes.data ?? '', databaseMiB);
  await fillCache(web.volumes.cache ?? '');
  return { db: db.pod, web: web.pod, volumes: { ...db.volumes, ...web.volumes } };
}
