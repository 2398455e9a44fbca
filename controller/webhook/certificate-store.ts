// Keeps the webhook's CA and serving certificate in one Secret shared by the replicas, and the CA in
// the MutatingWebhookConfiguration's caBundle. Every write is conditional: two replicas starting
// together agree on whichever Secret was written first.
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { httpStatusOf } from '../../kube/errors.ts';
import type { Logger } from '../../kube/logger.ts';
import {
  caIsFresh, expiryOf, issueCertificateAuthority, issueServingCertificate, servingIsFresh, type CertificateAuthority, type ServingCertificate,
} from './certificate.ts';

export interface WebhookTls {
  ca: CertificateAuthority;
  serving: ServingCertificate;
  /** What the webhook configuration's caBundle holds: the CA, and the one it replaced while that is still valid (other replicas may still serve a certificate it signed). */
  caBundle: string;
}

export interface CertificateStoreOptions {
  kc: KubeConfig;
  namespace: string;
  secretName: string;
  /** DNS names and IP addresses the serving certificate is for. */
  hosts: readonly string[];
  /** Life of a serving certificate issued here. */
  validityMs: number;
  log: Logger;
}

const ATTEMPTS = 5;
/** In the Secret: the CA certificate a renewed CA replaced, kept in the caBundle until it expires. */
const PREVIOUS_CA_KEY = 'ca-previous.crt';

function decode(secret: V1Secret, key: string): string | undefined {
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** The TLS material from the Secret, renewed (and written back) when missing, stale or for other hosts. */
export async function ensureWebhookTls({ kc, namespace, secretName, hosts, validityMs, log }: CertificateStoreOptions): Promise<WebhookTls> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 1; ; attempt++) {
    const existing = await core.readNamespacedSecret({ namespace, name: secretName }).catch((err: unknown) => {
      if (httpStatusOf(err) === 404) return undefined;
      throw err;
    });
    const stored = existing === undefined ? {} : {
      caCert: decode(existing, 'ca.crt'), caKey: decode(existing, 'ca.key'), cert: decode(existing, 'tls.crt'), key: decode(existing, 'tls.key'),
      previousCa: decode(existing, PREVIOUS_CA_KEY),
    };
    let previousCa = stored.previousCa;
    let ca: CertificateAuthority | undefined = stored.caCert !== undefined && stored.caKey !== undefined ? { certPem: stored.caCert, keyPem: stored.caKey } : undefined;
    let serving: ServingCertificate | undefined = stored.cert !== undefined && stored.key !== undefined ? { certPem: stored.cert, keyPem: stored.key } : undefined;
    if (ca === undefined || !caIsFresh(ca)) {
      previousCa = ca?.certPem;
      ca = await issueCertificateAuthority('arca-webhook-ca');
      serving = undefined;
    }
    const caBundle = [ca.certPem, ...(previousCa !== undefined && expiryOf(previousCa).getTime() > Date.now() ? [previousCa] : [])].join('');
    if (serving !== undefined && await servingIsFresh(serving, ca, hosts)) return { ca, serving, caBundle };
    serving = await issueServingCertificate(ca, hosts, validityMs);
    const body: V1Secret = {
      metadata: { name: secretName, namespace, resourceVersion: existing?.metadata?.resourceVersion, labels: { 'app.kubernetes.io/part-of': 'arca' } },
      type: 'kubernetes.io/tls',
      data: {
        'ca.crt': encode(ca.certPem), 'ca.key': encode(ca.keyPem), 'tls.crt': encode(serving.certPem), 'tls.key': encode(serving.keyPem),
        ...(previousCa === undefined ? {} : { [PREVIOUS_CA_KEY]: encode(previousCa) }),
      },
    };
    try {
      if (existing === undefined) await core.createNamespacedSecret({ namespace, body });
      else await core.replaceNamespacedSecret({ namespace, name: secretName, body });
      log.info({ secret: `${namespace}/${secretName}`, hosts, notAfter: expiryOf(serving.certPem).toISOString() }, 'issued the webhook serving certificate');
      return { ca, serving, caBundle };
    } catch (err) {
      // Another replica wrote first: use what it wrote.
      const status = httpStatusOf(err);
      if ((status !== 409 && status !== 422) || attempt >= ATTEMPTS) throw err;
    }
  }
}

/** Sets every webhook's caBundle in the MutatingWebhookConfiguration `name` to `caPem` (one or more PEM certificates). */
export async function patchCaBundle(kc: KubeConfig, name: string, caPem: string, log: Logger): Promise<void> {
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  const caBundle = encode(caPem);
  for (let attempt = 1; ; attempt++) {
    const config = await api.readMutatingWebhookConfiguration({ name });
    const webhooks = config.webhooks ?? [];
    if (webhooks.every((w) => w.clientConfig.caBundle === caBundle)) return;
    for (const webhook of webhooks) webhook.clientConfig.caBundle = caBundle;
    try {
      await api.replaceMutatingWebhookConfiguration({ name, body: config });
      log.info({ webhookConfiguration: name }, 'patched the webhook caBundle');
      return;
    } catch (err) {
      if (httpStatusOf(err) !== 409 || attempt >= ATTEMPTS) throw err;
    }
  }
}
