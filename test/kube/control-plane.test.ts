import {
  ApiException, AuthenticationV1Api, CoreV1Api, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions, type KubeConfig,
} from '@kubernetes/client-node';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  adminKubeConfig, createTestNamespace, impersonating, kubeAvailable, kubeTestEnv, kubectl, serviceAccountKubeConfig,
} from '../support/control-plane.ts';

/** The HTTP status of a rejected client-node call (ApiException.code). */
async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
  throw new Error('the call succeeded');
}

async function whoAmI(kc: KubeConfig): Promise<{ username?: string; groups?: string[] }> {
  const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
  return review.status?.userInfo ?? {};
}

describe.skipIf(!kubeAvailable)('the test control plane', () => {
  let admin: KubeConfig;
  let namespace: string;

  beforeAll(async () => {
    admin = adminKubeConfig();
    namespace = await createTestNamespace(admin, 'control-plane');
  });

  test('a pod bound to a node stays Pending until the test, playing the kubelet, patches its status', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const created = await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'app' },
        spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'registry.invalid/app:1' }], volumes: [{ name: 'data', emptyDir: {} }] },
      },
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await core.readNamespacedPod({ namespace, name: 'app' })).status?.phase).toBe('Pending');

    await core.patchNamespacedPodStatus(
      { namespace, name: 'app', body: { status: { phase: 'Running', podIP: '10.1.0.7', conditions: [{ type: 'Ready', status: 'True' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const read = await core.readNamespacedPod({ namespace, name: 'app' });
    expect(read.status?.phase).toBe('Running');
    expect(read.status?.podIP).toBe('10.1.0.7');
    expect(read.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(read.spec?.nodeName).toBe('node-a');
  });

  test('kubectl and the API server both report the pinned version', async () => {
    const { version } = kubeTestEnv();
    const { stdout } = await kubectl(['version', '--output=json']);
    const reported = JSON.parse(stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string; minor: string } };
    expect(reported.clientVersion.gitVersion).toBe(version);
    expect(reported.serverVersion.gitVersion).toBe(version);
    expect(reported.serverVersion.minor).toBe(version.split('.')[1]);
  });

  test('the admin can act as a service account, which RBAC confines to what its role grants', async () => {
    const account = `system:serviceaccount:${namespace}:agent`;
    const asAgent = impersonating(admin, account);
    expect(await whoAmI(asAgent)).toMatchObject({
      username: account,
      groups: expect.arrayContaining(['system:serviceaccounts', `system:serviceaccounts:${namespace}`]) as unknown,
    });
    const agentCore = asAgent.makeApiClient(CoreV1Api);
    expect(await statusOf(agentCore.listNamespacedPod({ namespace }))).toBe(403);

    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'agent-reads-pods' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace }],
      },
    });
    expect((await agentCore.listNamespacedPod({ namespace })).kind).toBe('PodList');
    expect(await statusOf(agentCore.listNamespacedPod({ namespace: 'default' }))).toBe(403);
    expect(await statusOf(agentCore.deleteNamespacedPod({ namespace, name: 'app' }))).toBe(403);

    const { stdout } = await kubectl(['auth', 'can-i', 'list', 'pods', `--namespace=${namespace}`, `--as=${account}`]);
    expect(stdout.trim()).toBe('yes');
  });

  test('RBAC denies an unprivileged user, through client-node and through kubectl --as', async () => {
    const nobody = impersonating(admin, 'arca-test-nobody');
    expect(await whoAmI(nobody)).toMatchObject({ username: 'arca-test-nobody' });
    const core = nobody.makeApiClient(CoreV1Api);
    expect(await statusOf(core.listNamespacedPod({ namespace }))).toBe(403);
    expect(await statusOf(core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'x' } } }))).toBe(403);
    await expect(kubectl(['get', 'pods', `--namespace=${namespace}`, '--as=arca-test-nobody'])).rejects.toThrow(/forbidden/i);
  });

  test('a service account token issued by the API server authenticates as that account', async () => {
    const asAccount = await serviceAccountKubeConfig(admin, namespace, 'token-holder');
    expect(await whoAmI(asAccount)).toMatchObject({ username: `system:serviceaccount:${namespace}:token-holder` });
    expect(await statusOf(asAccount.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace }))).toBe(403);
  });
});
