// The label that puts a namespace under the restore webhook: set while its VolumeRestore runs,
// removed when it ends. A target namespace that does not exist yet is created labelled, so pods a
// GitOps tool creates into it right after are seen.
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import { RESTORE_NAMESPACE_LABEL } from '../../kube/api/labels.ts';
import { httpStatusOf } from '../../kube/errors.ts';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

async function readNamespaceLabel(core: CoreV1Api, namespace: string): Promise<{ exists: boolean; label?: string | undefined }> {
  try {
    const ns = await core.readNamespace({ name: namespace });
    return { exists: true, label: ns.metadata?.labels?.[RESTORE_NAMESPACE_LABEL] };
  } catch (err) {
    if (httpStatusOf(err) === 404) return { exists: false };
    throw err;
  }
}

/** Labels `namespace` for `restore`; returns the other restore holding it, if one does. */
export async function labelForRestore(core: CoreV1Api, namespace: string, restore: string): Promise<string | undefined> {
  const current = await readNamespaceLabel(core, namespace);
  if (current.label === restore) return undefined;
  if (current.label !== undefined) return current.label;
  if (!current.exists) {
    try {
      await core.createNamespace({ body: { metadata: { name: namespace, labels: { [RESTORE_NAMESPACE_LABEL]: restore } } } });
      return undefined;
    } catch (err) {
      if (httpStatusOf(err) !== 409) throw err;
    }
  }
  await core.patchNamespace({ name: namespace, body: { metadata: { labels: { [RESTORE_NAMESPACE_LABEL]: restore } } } }, MERGE_PATCH);
  return undefined;
}

/** Removes the label from each namespace still labelled for `restore`. */
export async function unlabelForRestore(core: CoreV1Api, namespaces: readonly string[], restore: string): Promise<void> {
  for (const namespace of namespaces) {
    if ((await readNamespaceLabel(core, namespace)).label !== restore) continue;
    await core.patchNamespace({ name: namespace, body: { metadata: { labels: { [RESTORE_NAMESPACE_LABEL]: null } } } }, MERGE_PATCH);
  }
}
