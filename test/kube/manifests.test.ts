import { beforeAll, describe, expect, test } from 'vitest';
import { MANIFESTS } from '../support/arca-kube.ts';
import { kubeAvailable, kubectl } from '../support/control-plane.ts';

const AGENT = 'system:serviceaccount:arca-system:arca-agent';
const CONTROLLER = 'system:serviceaccount:arca-system:arca-controller';

/** `kubectl auth can-i` as `user`: true for yes, false for no (exit 1), anything else throws. */
async function canI(user: string, ...args: string[]): Promise<boolean> {
  try {
    return (await kubectl(['auth', 'can-i', '--as', user, ...args])).stdout.trim() === 'yes';
  } catch (err) {
    const { code, stdout } = err as { code?: number; stdout?: string };
    if (code === 1 && stdout?.trim() === 'no') return false;
    throw err;
  }
}

describe.skipIf(!kubeAvailable)('manifests/ on a real API server', () => {
  beforeAll(async () => {
    await kubectl(['apply', '--server-side', '--force-conflicts', '-k', MANIFESTS]);
  });

  test('kubectl apply -k manifests/ --server-side creates every object, and applying again changes nothing', async () => {
    const { stdout } = await kubectl(['apply', '--server-side', '-k', MANIFESTS]);
    expect(stdout).toContain('daemonset.apps/arca-agent serverside-applied');
    expect(stdout).toContain('deployment.apps/arca-controller serverside-applied');
    expect(stdout).toContain('mutatingwebhookconfiguration.admissionregistration.k8s.io/arca-restore serverside-applied');
    const { stdout: diff } = await kubectl(['diff', '--server-side', '-k', MANIFESTS]).catch((err: unknown) => err as { stdout: string });
    expect(diff).toBe('');
    const daemonSet = JSON.parse((await kubectl(['get', 'daemonset', '-n', 'arca-system', 'arca-agent', '-o', 'json'])).stdout) as {
      spec: { template: { spec: { tolerations: unknown[]; containers: { volumeMounts: { name: string; mountPropagation?: string }[]; env: { name: string; valueFrom?: unknown }[] }[] } } };
    };
    const pod = daemonSet.spec.template.spec;
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.containers[0]?.volumeMounts.find((m) => m.name === 'host-pods')?.mountPropagation).toBe('HostToContainer');
    expect(pod.containers[0]?.env.find((e) => e.name === 'NODE_NAME')?.valueFrom).toEqual({ fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } });
    const webhook = JSON.parse((await kubectl(['get', 'mutatingwebhookconfiguration', 'arca-restore', '-o', 'json'])).stdout) as { webhooks: { failurePolicy: string; namespaceSelector: unknown }[] };
    expect(webhook.webhooks[0]).toMatchObject({ failurePolicy: 'Fail', namespaceSelector: { matchExpressions: [{ key: 'arca.dev/restore', operator: 'Exists' }] } });
  });

  test('the agent may read pods and write PodVolumeBackup status, and nothing more dangerous', async () => {
    expect(await canI(AGENT, 'list', 'pods', '--all-namespaces')).toBe(true);
    expect(await canI(AGENT, 'watch', 'podvolumebackups.arca.dev', '-n', 'arca-system')).toBe(true);
    expect(await canI(AGENT, 'update', 'podvolumebackups.arca.dev', '--subresource=status', '-n', 'arca-system')).toBe(true);
    expect(await canI(AGENT, 'update', 'podvolumerestores.arca.dev', '--subresource=status', '-n', 'arca-system')).toBe(true);
    expect(await canI(AGENT, 'get', 'secrets', '-n', 'arca-system')).toBe(true);

    expect(await canI(AGENT, 'delete', 'pods', '-n', 'default')).toBe(false);
    expect(await canI(AGENT, 'get', 'secrets', '-n', 'default')).toBe(false);
    expect(await canI(AGENT, 'list', 'secrets', '--all-namespaces')).toBe(false);
    expect(await canI(AGENT, 'update', 'podvolumebackups.arca.dev', '-n', 'arca-system')).toBe(false); // spec belongs to the controller
    expect(await canI(AGENT, 'create', 'customresourcedefinitions.apiextensions.k8s.io')).toBe(false);
    expect(await canI(AGENT, 'patch', 'customresourcedefinitions.apiextensions.k8s.io/podvolumebackups.arca.dev')).toBe(false);
  });

  test('the controller may own the Arca objects, its Lease and the webhook, but not other secrets', async () => {
    expect(await canI(CONTROLLER, 'create', 'podvolumebackups.arca.dev', '-n', 'arca-system')).toBe(true);
    expect(await canI(CONTROLLER, 'update', 'leases.coordination.k8s.io', '-n', 'arca-system')).toBe(true);
    expect(await canI(CONTROLLER, 'patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/arca-restore')).toBe(true);
    expect(await canI(CONTROLLER, 'patch', 'namespaces/default')).toBe(true);
    expect(await canI(CONTROLLER, 'patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses')).toBe(false);
    expect(await canI(CONTROLLER, 'get', 'secrets', '-n', 'default')).toBe(false);
    expect(await canI(CONTROLLER, 'delete', 'pods', '-n', 'default')).toBe(false);
    expect(await canI(CONTROLLER, 'update', 'leases.coordination.k8s.io', '-n', 'kube-system')).toBe(false);
  });

  test('the example repository and schedule validate against the CRDs', async () => {
    const { stdout } = await kubectl(['apply', '--server-side', '--dry-run=server', '-k', `${MANIFESTS}/examples`]);
    expect(stdout).toContain('backuprepository.arca.dev/default serverside-applied (server dry run)');
    expect(stdout).toContain('volumebackupschedule.arca.dev/nightly serverside-applied (server dry run)');
  });

  test('the overlays mount the kubelet pods directory of k0s and microk8s, and bind OpenShift\'s privileged SCC', async () => {
    for (const [overlay, path] of [['k0s', '/var/lib/k0s/kubelet/pods'], ['microk8s', '/var/snap/microk8s/common/var/lib/kubelet/pods']] as const) {
      const rendered = (await kubectl(['kustomize', `${MANIFESTS}/overlays/${overlay}`])).stdout;
      expect(rendered, overlay).toContain(`path: ${path}`);
      expect(rendered, overlay).not.toContain('path: /var/lib/kubelet/pods');
    }
    const openshift = (await kubectl(['apply', '--server-side', '--dry-run=server', '-k', `${MANIFESTS}/overlays/openshift`])).stdout;
    expect(openshift).toContain('rolebinding.rbac.authorization.k8s.io/arca-agent-privileged-scc serverside-applied (server dry run)');
  });
});
