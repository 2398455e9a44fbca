import type { ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { connect, type PeerCertificate } from 'node:tls';
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { installCrds } from '../support/arca-kube.ts';
import { stopChild } from '../support/child-process.ts';
import {
  controllerArgs, createWebhookConfiguration, deleteWebhookConfiguration, freePort, startControllerProcess, until as waitFor, type ControllerProcess,
} from '../support/controller-process.ts';
import { adminKubeConfig, createTestNamespace, kubeAvailable, kubeTestEnv } from '../support/control-plane.ts';
import { scrapeMetrics } from '../support/metrics.ts';

// The restore webhook's serving certificate is renewed while the controller runs: with a 4 s life
// it is renewed every ~2.7 s, and the API server keeps admitting pods through the webhook
// (failurePolicy Fail: a webhook it cannot trust would refuse them) across several renewals. The
// webhook closes idle connections on each renewal, so the API server's next call is a new TLS
// handshake with the renewed certificate.

const VALIDITY_S = 4;

/** The certificate the webhook presents to a client that trusts only `caBundle` (the handshake fails otherwise). */
function presented(port: number, caBundle: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: caBundle, rejectUnauthorized: true }, () => {
      resolve(socket.getPeerCertificate());
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe.skipIf(!kubeAvailable)('arca controller: the webhook certificate is renewed while it runs', () => {
  let admin: KubeConfig;
  let webhookConfig: string | undefined;
  let controller: ControllerProcess;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    admin = adminKubeConfig();
    await installCrds(admin);
  });

  afterAll(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    if (webhookConfig !== undefined) await deleteWebhookConfiguration(admin, webhookConfig);
  });

  test('renewed at two thirds of its life, the caBundle kept, and pods in restore namespaces admitted throughout', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const webhooks = admin.makeApiClient(AdmissionregistrationV1Api);
    const controllerNs = await createTestNamespace(admin, 'cert');
    const target = await createTestNamespace(admin, 'cert-target');
    const port = await freePort();
    const configName = await createWebhookConfiguration(admin, port);
    webhookConfig = configName;
    controller = await startControllerProcess([...controllerArgs(kubeTestEnv().kubeconfig, controllerNs, configName, port), '--webhook-cert-validity', `${VALIDITY_S}s`]);
    children.push(controller.child);
    // Every pod created here now goes through the webhook.
    await core.patchNamespace({ name: target, body: [{ op: 'add', path: '/metadata/labels', value: { [RESTORE_NAMESPACE_LABEL]: 'none' } }] });

    const seen = new Map<string, PeerCertificate>();
    let admitted = 0;
    const until = Date.now() + 3.5 * VALIDITY_S * 1000;
    while (Date.now() < until) {
      const caBundle = Buffer.from((await webhooks.readMutatingWebhookConfiguration({ name: configName })).webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
      const cert = await presented(port, caBundle);
      seen.set(cert.fingerprint256, cert);
      await core.createNamespacedPod({ namespace: target, dryRun: 'All', body: { metadata: { name: `p-${admitted}` }, spec: { containers: [{ name: 'app', image: 'app:1' }] } } });
      admitted++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Three and a half lives at two thirds each: at least four certificates, each trusted by the caBundle when presented.
    expect(seen.size).toBeGreaterThanOrEqual(4);
    expect(admitted).toBeGreaterThan(20);
    const certs = [...seen.values()];
    for (const cert of certs) expect(Date.parse(cert.valid_to) - Date.parse(cert.valid_from)).toBe((VALIDITY_S + 60) * 1000);
    expect(certs.every((c) => c.subjectaltname?.includes('IP Address:127.0.0.1'))).toBe(true);
    // The Secret shared by the replicas holds the one served now.
    const secret = await core.readNamespacedSecret({ namespace: controllerNs, name: 'arca-webhook-tls' });
    const stored = Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString();
    const current = await presented(port, Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString());
    expect(new X509Certificate(stored).fingerprint256).toBe(current.fingerprint256);
    const expiry = (await scrapeMetrics(controller.url))('arca_webhook_certificate_expiry_timestamp_seconds');
    expect(expiry).toBe(Math.floor(Date.parse(current.valid_to) / 1000));
    expect(controller.output()).not.toMatch(/could not renew/);

    // A re-applied manifest empties the caBundle: the next turn puts it back, and pods are admitted again.
    const config = await webhooks.readMutatingWebhookConfiguration({ name: configName });
    for (const webhook of config.webhooks ?? []) delete webhook.clientConfig.caBundle;
    await webhooks.replaceMutatingWebhookConfiguration({ name: configName, body: config });
    await waitFor(async () => ((await webhooks.readMutatingWebhookConfiguration({ name: configName })).webhooks?.[0]?.clientConfig.caBundle === undefined ? undefined : true));
    await waitFor(async () => core.createNamespacedPod({ namespace: target, dryRun: 'All', body: { metadata: { name: 'after' }, spec: { containers: [{ name: 'app', image: 'app:1' }] } } }).then(() => true, () => undefined));
  });
});
