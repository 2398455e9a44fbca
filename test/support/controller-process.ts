// `arca controller` as a process against the test control plane, for the controller's kube tests.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdmissionregistrationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { waitForLine } from './child-process.ts';
import { startArca } from './cli.ts';

export interface ControllerProcess {
  child: ChildProcess;
  /** Its health and metrics server. */
  url: string;
  output: () => string;
}

/** A free TCP port on 127.0.0.1 (the webhook's, which the webhook configuration must name up front). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

export async function startControllerProcess(args: readonly string[], env: Record<string, string> = {}): Promise<ControllerProcess> {
  const child = startArca(['controller', '--metrics-address', '127.0.0.1:0', ...args], { env });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { output += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { output += d; });
  const url = await waitForLine('arca controller', child, /"url":"(http:\/\/[^"]+)"/, 60_000);
  // Ready means watching, and serving the webhook with its certificate.
  await until(async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined));
  return { child, url, output: () => output };
}

/** Polls `probe` until it returns a value (not undefined). The test's own timeout bounds the wait. */
export async function until<T>(probe: () => Promise<T | undefined> | T | undefined, everyMs = 100): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(everyMs);
  }
}

/**
 * A MutatingWebhookConfiguration like manifests/ has, but reaching a controller at
 * https://127.0.0.1:PORT (nothing runs in pods here). Returns its name; the controller fills caBundle.
 */
export async function createWebhookConfiguration(admin: KubeConfig, port: number, name = `arca-restore-${randomBytes(4).toString('hex')}`): Promise<string> {
  await admin.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
    body: {
      metadata: { name },
      webhooks: [{
        name: 'restore.pods.arca.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail', timeoutSeconds: 10,
        clientConfig: { url: `https://127.0.0.1:${port}/mutate-pods` },
        namespaceSelector: { matchExpressions: [{ key: RESTORE_NAMESPACE_LABEL, operator: 'Exists' }] },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      }],
    },
  });
  return name;
}

export async function deleteWebhookConfiguration(admin: KubeConfig, name: string): Promise<void> {
  await admin.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
}

/** Arguments for a test controller: admin credentials, its own namespace, webhook and a fast Lease. */
export function controllerArgs(kubeconfig: string, namespace: string, webhookConfiguration: string, port: number): string[] {
  return [
    '--kubeconfig', kubeconfig, '--namespace', namespace,
    '--webhook-address', `127.0.0.1:${port}`, '--webhook-configuration', webhookConfiguration, '--webhook-host', '127.0.0.1',
    '--restore-wait-image', 'arca:test',
    '--leader-election-id', 'arca-controller', '--retry-period', '200ms', '--renew-deadline', '1s', '--lease-duration', '2s',
  ];
}
