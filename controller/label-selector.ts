// Standard Kubernetes label selectors, evaluated on labels the controller already holds.
import type { Static } from '../kube/api/fields.ts';
import type { LabelSelector } from '../kube/api/fields.ts';

export type Selector = Static<typeof LabelSelector>;

export function matchesSelector(selector: Selector | undefined, labels: Readonly<Record<string, string>> = {}): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  return (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    switch (operator) {
      case 'In': return value !== undefined && values.includes(value);
      case 'NotIn': return value === undefined || !values.includes(value);
      case 'Exists': return value !== undefined;
      case 'DoesNotExist': return value === undefined;
    }
  });
}
