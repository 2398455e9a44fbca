// CustomResourceDefinitions generated from the kinds (npm run gen:crds writes them to manifests/crds/).
import { stringify } from 'yaml';
import { GROUP, KINDS, VERSION, type KindDefinition } from './kinds.ts';

/** A TypeBox schema as plain JSON: its hidden `~kind` markers and functions dropped. */
function plain(schema: object): object {
  return JSON.parse(JSON.stringify(schema)) as object;
}

export function customResourceDefinition(kind: KindDefinition): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${kind.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'arca' } },
    spec: {
      group: GROUP,
      names: { kind: kind.kind, listKind: `${kind.kind}List`, plural: kind.plural, singular: kind.singular, shortNames: kind.shortNames, categories: ['arca'] },
      scope: 'Namespaced',
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: kind.printerColumns,
        schema: {
          openAPIV3Schema: {
            description: kind.description,
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: plain(kind.spec),
              status: plain(kind.status),
            },
          },
        },
      }],
    },
  };
}

const HEADER = '# Generated from kube/api/ by `npm run gen:crds`; do not edit.\n';

/** File name to content for manifests/crds/: one CRD per file and their kustomization. */
export function renderCrdManifests(): Map<string, string> {
  const files = new Map<string, string>();
  for (const kind of KINDS) files.set(`${GROUP}_${kind.plural}.yaml`, HEADER + stringify(customResourceDefinition(kind), { lineWidth: 0 }));
  files.set('kustomization.yaml', HEADER + stringify({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [...files.keys()],
  }));
  return files;
}
