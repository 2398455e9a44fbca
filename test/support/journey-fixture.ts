// The setting of the journeys that run against S3: s3rver behind a fault proxy (no faults until a
// test sets a rate; it can hold a request), a repository there, Arca installed on two simulated
// nodes with that repository as BackupRepository `s3`, and the app running with its data.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { installCrds } from './arca-kube.ts';
import { arcaOk } from './cli.ts';
import { kubeConfigFromFile } from '../../scripts/kube/control-plane.ts';
import { createTestNamespace, kubeTestEnv } from './control-plane.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { deployApp, s3Repository, type DeployedApp } from './journey-app.ts';
import { startS3Server, type S3Server } from './s3-server.ts';
import { SimulatedCluster } from './simulated-cluster.ts';

export const NODES = ['node-a', 'node-b'];

export interface AppOnS3 {
  readonly cluster: SimulatedCluster;
  readonly s3: S3Server;
  readonly proxy: FaultProxy;
  readonly repo: ReturnType<typeof s3Repository>;
  readonly appNs: string;
  readonly app: DeployedApp;
  /** What the processes, the S3 server and the proxy did: for a failed test's report. */
  readonly report: () => string;
  readonly stop: () => Promise<void>;
}

/** The setting on the run's shared control plane, or on the one `kubeconfig` (admin) reaches. */
export async function startAppOnS3(name: string, password: string, seed: number, kubeconfig = kubeTestEnv().kubeconfig, restartExitedController = false): Promise<AppOnS3> {
  const admin = kubeConfigFromFile(kubeconfig);
  const root = await mkdtemp(path.join(os.tmpdir(), `arca-${name}-`));
  const s3 = await startS3Server();
  const proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: 0, seed });
  const repo = s3Repository(s3, proxy.endpoint, 'shop', password);
  await arcaOk(['init'], { env: repo.cliEnv });
  await installCrds(admin, kubeconfig);
  const cluster = new SimulatedCluster(admin, { kubeconfig, restartExitedController, root, namespace: await createTestNamespace(admin, 'system'), cluster: name });
  await cluster.install(NODES);
  await cluster.addRepository('s3', password, repo.spec, repo.credentials);
  const appNs = await createTestNamespace(admin, 'shop');
  const app = await deployApp(cluster, appNs, { db: 'node-a', web: 'node-b' });
  return {
    cluster, s3, proxy, repo, appNs, app,
    report: () => `What Arca's processes said:\n${cluster.report()}\n${s3.health()}\nFault proxy: ${JSON.stringify(proxy.stats())}`,
    stop: async () => {
      await cluster.stop();
      await proxy.stop();
      await s3.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/**
 * The suite's setting, started before its tests and stopped after them, with the processes' report
 * printed after a failed test. Returns a function giving the setting (started by the time a test runs).
 */
export function appOnS3ForSuite(name: string, password: string, seed: number): () => AppOnS3 {
  let setting: AppOnS3 | undefined;
  beforeAll(async () => { setting = await startAppOnS3(name, password, seed); });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(setting?.report());
  });
  afterAll(async () => { await setting?.stop(); });
  return () => {
    if (setting === undefined) throw new Error(`the ${name} setting did not start (see beforeAll)`);
    return setting;
  };
}
