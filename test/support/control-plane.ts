import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, type User } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { kubeConfigFromFile } from '../../scripts/kube/control-plane.ts';
import type { ProvidedKube } from './kube-global-setup.ts';

/**
 * The kube test project's view of the run's one control plane (kube-global-setup.ts starts it).
 * Tests isolate by namespace: each makes its own with createTestNamespace. Namespaces are never
 * deleted (no controller-manager finalizes them); the control plane lives for one run.
 */

/** False when the binaries are not built and the kube tests are skipped: `describe.skipIf(!kubeAvailable)`. */
export const kubeAvailable: boolean = inject('kube') !== undefined;

export function kubeTestEnv(): ProvidedKube {
  const kube = inject('kube');
  if (kube === undefined) throw new Error('The Kubernetes test control plane is not running; guard the suite with describe.skipIf(!kubeAvailable)');
  return kube;
}

/** A fresh client config acting as the admin (group system:masters). */
export function adminKubeConfig(): KubeConfig {
  return kubeConfigFromFile(kubeTestEnv().kubeconfig);
}

/**
 * `kc`'s cluster and credentials, acting as `user` through impersonation (Impersonate-User).
 * A service account's user name (`system:serviceaccount:NS:NAME`) also gets its groups.
 */
export function impersonating(kc: KubeConfig, user: string): KubeConfig {
  return withUser(kc, { ...currentUser(kc), name: `as-${user}`, impersonateUser: user });
}

/** A client config authenticated by a real token of service account NS/NAME, which it creates if missing. */
export async function serviceAccountKubeConfig(admin: KubeConfig, namespace: string, name: string): Promise<KubeConfig> {
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
  const request = await core.createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [] } } });
  const token = request.status?.token;
  if (token === undefined) throw new Error(`The API server returned no token for service account ${namespace}/${name}`);
  return withUser(admin, { name: `${namespace}-${name}`, token });
}

/** Creates a namespace named `arca-<prefix>-<random>` and returns its name. */
export async function createTestNamespace(admin: KubeConfig, prefix: string): Promise<string> {
  const created = await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { generateName: `arca-${prefix}-` } } });
  const name = created.metadata?.name;
  if (name === undefined) throw new Error('The API server returned a namespace without a name');
  return name;
}

/** Runs the pinned kubectl as admin against the run's control plane (or the one `kubeconfig` names); rejects on a non-zero exit. */
export async function kubectl(args: readonly string[], kubeconfig = kubeTestEnv().kubeconfig): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(kubeTestEnv().kubectl, [`--kubeconfig=${kubeconfig}`, ...args]);
}

function currentUser(kc: KubeConfig): User {
  const user = kc.getCurrentUser();
  if (user === null) throw new Error('The kubeconfig has no current user');
  return user;
}

function withUser(kc: KubeConfig, user: User): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('The kubeconfig has no current cluster');
  const copy = new KubeConfig();
  copy.loadFromClusterAndUser(cluster, user);
  return copy;
}
