// Helpers for tests of Arca's Kubernetes half against the test control plane.
import { ApiextensionsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KINDS, GROUP } from '../../kube/api/kinds.ts';
import { kubectl } from './control-plane.ts';

export const MANIFESTS = fileURLToPath(new URL('../../manifests', import.meta.url));

/**
 * Applies the CRDs (server-side, idempotent: test files may race) and waits until each is
 * Established; `kubeconfig` is the file of `admin` when that is not the run's control plane.
 */
export async function installCrds(admin: KubeConfig, kubeconfig?: string): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-k', `${MANIFESTS}/crds`], kubeconfig);
  const api = admin.makeApiClient(ApiextensionsV1Api);
  for (const kind of KINDS) {
    for (;;) {
      const crd = await api.readCustomResourceDefinition({ name: `${kind.plural}.${GROUP}` });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      await sleep(100);
    }
  }
}

/** The API server's rejection message of a failed client-node call. */
export async function rejection(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (err) {
    const { code, body } = err as { code?: number; body?: unknown };
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string };
    return { code: code ?? 0, message: status.message ?? '' };
  }
  throw new Error('the API server accepted the request');
}
