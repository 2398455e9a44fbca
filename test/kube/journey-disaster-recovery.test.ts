import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { BACKUP_SET_LABEL } from '../../kube/api/labels.ts';
import { installCrds } from '../support/arca-kube.ts';
import { startAzurite, type AzuriteServer } from '../support/azurite.ts';
import { arcaOk } from '../support/cli.ts';
import { until } from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { deployApp, restoreApp, s3Repository, scanVolumes } from '../support/journey-app.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { final, SimulatedCluster } from '../support/simulated-cluster.ts';

// Journey 3: another region, another cloud. The app is backed up in one cluster to S3 (s3rver);
// the repository is copied to Azure (Azurite) with `arca copy`; the first cluster is lost; a second
// cluster, with its own controller and agents on other nodes and a read-only BackupRepository on
// the Azure copy, syncs the backup sets from the repository and restores the app there.
// Both "clusters" are namespaces of the one test API server, each with its own Arca installation
// (controller, webhook configuration, agents with their own --cluster); the first is stopped, webhook
// and all, before the second starts, as its region is gone.

const PASSWORD = 'journey3-password';

describe.skipIf(!kubeAvailable)('journey 3: copy to another cloud, restore in another cluster from a read-only repository', () => {
  let s3: S3Server;
  let azure: AzuriteServer;
  let east: SimulatedCluster;
  let west: SimulatedCluster | undefined;
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'arca-journey3-'));
    [s3, azure] = await Promise.all([startS3Server(), startAzurite()]);
    await installCrds(adminKubeConfig());
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`What Arca's processes said:\n${east.report()}\n${west?.report() ?? ''}`);
  });

  afterAll(async () => {
    await east.stop();
    await west?.stop();
    await Promise.all([s3.stop(), azure.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  test('backed up to S3 in one cluster, copied to Azure, synced and restored byte for byte in another cluster on other nodes', async () => {
    const admin = adminKubeConfig();
    const kubeconfig = kubeTestEnv().kubeconfig;
    const source = s3Repository(s3, s3.endpoint, 'shop', PASSWORD);
    await arcaOk(['init'], { env: source.cliEnv });

    // The first region: Arca on two nodes, the app, a backup.
    east = new SimulatedCluster(admin, { kubeconfig, root: path.join(root, 'east'), namespace: await createTestNamespace(admin, 'east-system'), cluster: 'east' });
    await east.install(['east-a', 'east-b']);
    await east.addRepository('s3', PASSWORD, source.spec, source.credentials);
    const appNs = await createTestNamespace(admin, 'shop');
    const app = await deployApp(east, appNs, { db: 'east-a', web: 'east-b' });
    const expected = await scanVolumes(app.volumes);
    await east.backups.create(east.namespace, { metadata: { name: 'nightly' }, spec: { repository: 's3', includedNamespaces: [appNs] } });
    const backedUp = await final(east.backups, east.namespace, 'nightly');
    expect(backedUp.status, backedUp.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });

    // The repository, copied to another cloud, deduplicated (as a scheduled `arca copy` would).
    const copyUrl = `azure://${azure.container}/shop`;
    const azureEnv = { AZURE_STORAGE_CONNECTION_STRING: azure.connectionString, ARCA_PASSWORD: PASSWORD };
    await arcaOk(['init', '--repo', copyUrl], { env: azureEnv });
    await arcaOk(['copy', '--from-repo', source.spec.url, '--repo', copyUrl], { env: { ...source.cliEnv, ...azureEnv, ARCA_REPOSITORY: undefined, ARCA_FROM_PASSWORD: PASSWORD } });

    // The first region is lost.
    await east.stop();

    // The second: its own Arca on other nodes, the copy as a read-only repository; sync brings the backup set.
    west = new SimulatedCluster(admin, { kubeconfig, root: path.join(root, 'west'), namespace: await createTestNamespace(admin, 'west-system'), cluster: 'west' });
    await west.install(['west-a', 'west-b']);
    await west.addRepository('azure', PASSWORD, { url: copyUrl, readOnly: true }, { AZURE_STORAGE_CONNECTION_STRING: azure.connectionString });
    const synced = await until(async () => {
      const set = await west?.backups.get(west.namespace, 'nightly').catch(() => undefined);
      return set?.status?.phase === 'Completed' ? set : undefined;
    });
    expect(synced.metadata.labels?.[BACKUP_SET_LABEL]).toBe('nightly');
    expect(synced.spec.repository).toBe('azure');
    expect(synced.status?.volumes).toMatchObject({ total: 2, completed: 2 });

    // The app, applied in the new cluster (its own namespace here), onto the new nodes, is restored.
    const westNs = await createTestNamespace(admin, 'shop-west');
    const restored = await restoreApp(west, 'from-east', { volumeBackup: 'nightly', namespaceMapping: { [appNs]: westNs } }, westNs, { db: 'west-b', web: 'west-a' });
    expect(restored.initContainers.map((r) => r.code), restored.initContainers.map((r) => r.stderr).join('\n')).toEqual([0, 0]);
    expect(restored.restore.status, restored.restore.status?.message).toMatchObject({ phase: 'Completed', volumes: { total: 2, completed: 2 } });
    expect(Object.fromEntries(restored.trees)).toEqual(Object.fromEntries(expected));

    // Nothing in the second cluster wrote to the copy: still the one backup set's snapshots.
    const copied = JSON.parse((await arcaOk(['snapshots', '--json', '--repo', copyUrl], { env: azureEnv })).stdout) as unknown[];
    expect(copied).toHaveLength(2);
  });
});
