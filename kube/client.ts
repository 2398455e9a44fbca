import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeSetupError } from './errors.ts';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeConfigSource {
  /** --kubeconfig: wins over everything. */
  kubeconfig?: string | undefined;
  /** The process environment, read by the entry point: KUBERNETES_SERVICE_HOST, KUBECONFIG. */
  env: Readonly<Record<string, string | undefined>>;
}

/** Where the client connects: --kubeconfig, else in-cluster (a pod's service account), else $KUBECONFIG. */
export function loadKubeConfig({ kubeconfig, env }: KubeConfigSource): KubeConfig {
  const kc = new KubeConfig();
  const file = kubeconfig ?? (inCluster(env) ? undefined : env.KUBECONFIG);
  if (file !== undefined && file !== '') {
    if (!existsSync(file)) throw new KubeSetupError(`The kubeconfig ${file} does not exist; pass --kubeconfig with the path of a readable kubeconfig.`);
    kc.loadFromFile(file);
  } else if (inCluster(env)) {
    kc.loadFromCluster();
  } else {
    throw new KubeSetupError('No Kubernetes connection configured: run in a pod with a service account, set KUBECONFIG, or pass --kubeconfig.');
  }
  if (kc.getCurrentCluster() === null) throw new KubeSetupError(`The kubeconfig ${file ?? '(in-cluster)'} has no current cluster; set its current-context.`);
  return kc;
}

function inCluster(env: KubeConfigSource['env']): boolean {
  return env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== '' && existsSync(SERVICE_ACCOUNT_TOKEN);
}
