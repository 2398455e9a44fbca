// A typed client for one of our kinds: every object read is checked against the kind's schema.
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION, type KindDefinition, type Resource } from './api/kinds.ts';
import { parseResource } from './api/validate.ts';

export interface ListOptions {
  labelSelector?: string;
}

export interface ResourceList<K extends KindDefinition> {
  items: Resource<K>[];
  resourceVersion: string;
}

export class ResourceClient<K extends KindDefinition> {
  readonly kind: K;
  private readonly api: CustomObjectsApi;
  /** Who writes (managedFields): `arca-agent`, `arca-controller`. */
  private readonly fieldManager: string;

  constructor(kc: KubeConfig, kind: K, fieldManager: string) {
    this.kind = kind;
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.fieldManager = fieldManager;
  }

  /** API path of the collection, as watches want it; all namespaces when `namespace` is undefined. */
  path(namespace: string | undefined): string {
    return namespace === undefined
      ? `/apis/${GROUP}/${VERSION}/${this.kind.plural}`
      : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${this.kind.plural}`;
  }

  parse(value: unknown): Resource<K> {
    return parseResource(this.kind, value);
  }

  async get(namespace: string, name: string): Promise<Resource<K>> {
    return this.parse(await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: this.kind.plural, name }));
  }

  /** The raw list (items unchecked: a watcher decides what to do with a bad one) and its resourceVersion. */
  async listRaw(namespace: string | undefined, options: ListOptions = {}): Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
    const common = { group: GROUP, version: VERSION, plural: this.kind.plural, labelSelector: options.labelSelector };
    return (namespace === undefined
      ? await this.api.listClusterCustomObject(common)
      : await this.api.listNamespacedCustomObject({ ...common, namespace })) as { items: unknown[]; metadata?: { resourceVersion?: string } };
  }

  async list(namespace: string | undefined, options: ListOptions = {}): Promise<ResourceList<K>> {
    const list = await this.listRaw(namespace, options);
    return { items: list.items.map((item) => this.parse(item)), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  async create(namespace: string, object: Omit<Resource<K>, 'apiVersion' | 'kind'>): Promise<Resource<K>> {
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: this.kind.kind, ...object };
    return this.parse(await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: this.kind.plural, body, fieldManager: this.fieldManager }));
  }

  /**
   * Replaces the status through the status subresource. The object's resourceVersion makes the write
   * conditional: a 409 means someone wrote since it was read (see updateStatus for the retry).
   */
  async replaceStatus(object: Resource<K>): Promise<Resource<K>> {
    const { namespace, name } = identity(object);
    return this.parse(await this.api.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace, plural: this.kind.plural, name, body: object, fieldManager: this.fieldManager,
    }));
  }

  /** A JSON merge patch of the spec or metadata (e.g. `{ spec: { cancel: true } }`). */
  async mergePatch(namespace: string, name: string, patch: object): Promise<Resource<K>> {
    return this.parse(await this.api.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: this.kind.plural, name, body: patch, fieldManager: this.fieldManager },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ));
  }

  async delete(namespace: string, name: string): Promise<void> {
    await this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: this.kind.plural, name });
  }
}

export function identity(object: { kind: string; metadata: { namespace?: string; name?: string } }): { namespace: string; name: string } {
  const { namespace, name } = object.metadata;
  if (namespace === undefined || name === undefined) throw new TypeError(`A ${object.kind} without a namespace or name cannot be written back`);
  return { namespace, name };
}
