// The controller's finalizer on VolumeBackups and VolumeRestores: a deletion waits until their
// per-volume work is canceled (and a restore's namespace labels are gone), even if the controller
// was down when it was asked for.
import type { KindDefinition, Resource } from '../kube/api/kinds.ts';
import { identity, type ResourceClient } from '../kube/resources.ts';

export const FINALIZER = 'arca.dev/cleanup';

export function hasFinalizer(object: Resource<KindDefinition>): boolean {
  return (object.metadata.finalizers ?? []).includes(FINALIZER);
}

/** Merge patches carry the resourceVersion, so a list changed meanwhile is never overwritten. */
export async function addFinalizer<K extends KindDefinition>(client: ResourceClient<K>, object: Resource<K>): Promise<void> {
  if (hasFinalizer(object)) return;
  const { namespace, name } = identity(object);
  await client.mergePatch(namespace, name, { metadata: { resourceVersion: object.metadata.resourceVersion, finalizers: [...(object.metadata.finalizers ?? []), FINALIZER] } });
}

export async function removeFinalizer<K extends KindDefinition>(client: ResourceClient<K>, object: Resource<K>): Promise<void> {
  if (!hasFinalizer(object)) return;
  const { namespace, name } = identity(object);
  await client.mergePatch(namespace, name, { metadata: { resourceVersion: object.metadata.resourceVersion, finalizers: (object.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } });
}
