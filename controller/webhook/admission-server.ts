// The mutating admission webhook: fastify over TLS, one route per webhook. It answers every
// well-formed AdmissionReview with `allowed`; a pod it cannot or need not change is admitted as it
// is (the webhook's namespaceSelector already keeps it away from namespaces outside a restore).
import type { Server as TlsServer } from 'node:tls';
import { fastify } from 'fastify';
import type { Logger } from '../../kube/logger.ts';
import { parseListenAddress } from '../../kube/health-server.ts';
import type { JsonPatchOperation } from '../restore/pod-mutation.ts';

export const MUTATE_PODS_PATH = '/mutate-pods';

export interface AdmissionRequest {
  uid: string;
  namespace?: string;
  operation?: string;
  object?: unknown;
}

interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: AdmissionRequest;
}

export interface AdmissionServerOptions {
  address: string;
  tls: { certPem: string; keyPem: string };
  /** The patch for a pod, or undefined to admit it unchanged. */
  mutatePod: (request: AdmissionRequest) => JsonPatchOperation[] | undefined;
  log: Logger;
}

export interface AdmissionServer {
  readonly url: string;
  /** Serves `tls` from the next TLS handshake on; idle connections are closed so that clients reconnect to it, busy ones finish first. */
  setTls(tls: { certPem: string; keyPem: string }): void;
  close(): Promise<void>;
}

export async function startAdmissionServer({ address, tls, mutatePod, log }: AdmissionServerOptions): Promise<AdmissionServer> {
  const { host, port } = parseListenAddress(address);
  const app = fastify({ logger: false, https: { cert: tls.certPem, key: tls.keyPem }, bodyLimit: 8 * 1024 * 1024 });
  app.post(MUTATE_PODS_PATH, async (request, reply) => {
    const review = request.body as AdmissionReview | undefined;
    const admission = review?.request;
    if (typeof admission?.uid !== 'string') return reply.code(400).send({ message: 'expected an admission.k8s.io/v1 AdmissionReview with a request' });
    let patch: JsonPatchOperation[] | undefined;
    try {
      patch = mutatePod(admission);
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err), namespace: admission.namespace }, 'restore webhook: admitting the pod unchanged after an error');
    }
    const response = patch === undefined
      ? { uid: admission.uid, allowed: true }
      : { uid: admission.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
  });
  await app.listen({ host, port });
  const bound = app.server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
  // Fastify types its server as plain HTTP; with `https` set it is a TLS server.
  const server = app.server as unknown as TlsServer;
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    setTls: ({ certPem, keyPem }) => {
      server.setSecureContext({ cert: certPem, key: keyPem });
      // The API server keeps connections alive: without this it would meet the renewed certificate
      // only at some later reconnect, and a problem with it would show only then.
      app.server.closeIdleConnections();
    },
    close: () => app.close(),
  };
}
