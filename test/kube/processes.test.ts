import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PodVolumeBackupKind } from '../../kube/api/kinds.ts';
import { NODE_LABEL } from '../../kube/api/labels.ts';
import { ResourceClient } from '../../kube/resources.ts';
import { installCrds, MANIFESTS } from '../support/arca-kube.ts';
import { stopChild, waitForLine } from '../support/child-process.ts';
import { startArca, tempDir } from '../support/cli.ts';
import { adminKubeConfig, kubeAvailable, kubectl, serviceAccountKubeConfig } from '../support/control-plane.ts';

// The agent and the controller as the cluster runs them: real processes, each with its service
// account's token and the RBAC of manifests/, against the test control plane.

interface Started {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

async function start(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const child = startArca(args, { env });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const url = await waitForLine(args[0] ?? 'arca', child, /"url":"(http:\/\/[^"]+)"/, 60_000);
  return { child, url, stderr: () => stderr };
}

async function untilReady(url: string): Promise<string> {
  for (;;) {
    const response = await fetch(`${url}/readyz`);
    if (response.status === 200) return response.text();
    await sleep(100);
  }
}

/** SIGTERM, then the exit event (SIGKILL after 5 s, which fails the exit-code assertion). */
async function terminate(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { resolve({ code, signal }); });
  });
  const startedAt = performance.now();
  const stopped = stopChild(child);
  const result = await exited;
  await stopped;
  return { ...result, ms: performance.now() - startedAt };
}

describe.skipIf(!kubeAvailable)('arca agent and arca controller as processes', () => {
  let admin: KubeConfig;
  let scratch: { dir: string; cleanup: () => Promise<void> };
  const kubeconfigs: Record<'agent' | 'controller', string> = { agent: '', controller: '' };
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    admin = adminKubeConfig();
    await installCrds(admin);
    await kubectl(['apply', '--server-side', '--force-conflicts', '-k', MANIFESTS]);
    scratch = await tempDir('arca-processes-');
    for (const who of ['agent', 'controller'] as const) {
      const kc = await serviceAccountKubeConfig(admin, 'arca-system', `arca-${who}`);
      kubeconfigs[who] = path.join(scratch.dir, `${who}.kubeconfig`);
      await writeFile(kubeconfigs[who], kc.exportConfig());
    }
  });
  afterAll(async () => {
    await Promise.all(running.map((child) => stopChild(child)));
    await scratch.cleanup();
  });

  test('the agent watches only its node\'s objects, becomes ready, serves /metrics and exits 0 on SIGTERM', async () => {
    const node = `node-${randomBytes(4).toString('hex')}`;
    const pvbs = new ResourceClient(admin, PodVolumeBackupKind, 'arca-test');
    const spec = { node, pod: { namespace: 'wp', name: 'db-0', uid: 'u-1' }, volume: 'data', repository: 'default', backupSet: 'set-1' };
    await pvbs.create('arca-system', { metadata: { name: `${node}-mine`, labels: { [NODE_LABEL]: node } }, spec });
    await pvbs.create('arca-system', { metadata: { name: `${node}-other`, labels: { [NODE_LABEL]: `${node}-other` } }, spec: { ...spec, node: `${node}-other` } });

    const agent = await start([
      'agent', '--kubeconfig', kubeconfigs.agent, '--node', node, '--namespace', 'arca-system', '--metrics-address', '127.0.0.1:0',
      '--pods-dir', scratch.dir, '--cache-dir', scratch.dir,
    ]);
    running.push(agent.child);
    expect(await untilReady(agent.url)).toBe('ok\n');
    expect(await (await fetch(`${agent.url}/healthz`)).text()).toBe('ok\n');
    // Its own object is taken and failed (its pod does not exist); the other node's is not touched.
    while ((await pvbs.get('arca-system', `${node}-mine`)).status?.phase !== 'Failed') await sleep(100);
    expect((await pvbs.get('arca-system', `${node}-mine`)).status?.message).toBe('Pod wp/db-0 is gone.');
    expect((await pvbs.get('arca-system', `${node}-other`)).status).toBeUndefined();
    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    expect(metrics).toContain('arca_watched_objects{kind="PodVolumeBackup",phase="Failed",component="agent"} 1\n');
    expect(metrics).toContain('arca_process_resident_memory_bytes{component="agent"}');

    const exit = await terminate(agent.child);
    console.log(`agent: exited ${String(exit.code)} ${exit.ms.toFixed(0)} ms after SIGTERM`);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(agent.stderr()).toBe('');
  });

  test('the controller takes the Lease, becomes ready, serves /metrics, and on SIGTERM releases the Lease and exits 0', async () => {
    const lease = `arca-controller-${randomBytes(4).toString('hex')}`;
    const controller = await start([
      'controller', '--kubeconfig', kubeconfigs.controller, '--namespace', 'arca-system', '--metrics-address', '127.0.0.1:0',
      '--leader-election-id', lease, '--retry-period', '200ms', '--renew-deadline', '1s', '--lease-duration', '2s',
      // No pod runs it here to read its image from; the webhook on any free port.
      '--restore-wait-image', 'arca:test', '--webhook-address', '127.0.0.1:0',
    ], { POD_NAME: 'arca-controller-test' });
    running.push(controller.child);
    expect(await untilReady(controller.url)).toBe('ok\n');
    const leases = admin.makeApiClient(CoordinationV1Api);
    let holder: string | undefined;
    while (!(holder ?? '').startsWith('arca-controller-test_')) {
      holder = await leases.readNamespacedLease({ namespace: 'arca-system', name: lease }).then((l) => l.spec?.holderIdentity, () => undefined);
      await sleep(100);
    }
    const metrics = await (await fetch(`${controller.url}/metrics`)).text();
    expect(metrics).toContain('arca_controller_leader{component="controller"} 1\n');
    expect(metrics).toContain('# TYPE arca_watched_objects gauge');

    const exit = await terminate(controller.child);
    console.log(`controller: exited ${String(exit.code)} ${exit.ms.toFixed(0)} ms after SIGTERM`);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect((await leases.readNamespacedLease({ namespace: 'arca-system', name: lease })).spec?.holderIdentity).toBe('');
    expect(controller.stderr()).toBe('');
  });
});
