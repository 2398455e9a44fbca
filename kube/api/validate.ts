// Run-time checks of objects read from the API server against the same schemas as the CRDs, so a
// reconciler works on typed values or reports, in one sentence, which field is wrong.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import Type from 'typebox';
import { API_VERSION, type KindDefinition, type Resource } from './kinds.ts';

export class InvalidResourceError extends Error {
  override readonly name = 'InvalidResourceError';
  readonly code = 'ARCA_INVALID_RESOURCE';
}

const ajv = new Ajv({ allErrors: false, strict: true });
// The API server's own formats and extensions; the server enforces the x-kubernetes ones.
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
ajv.addFormat('date-time', (s: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(s) && !Number.isNaN(Date.parse(s)));
ajv.addKeyword('x-kubernetes-validations');

const validators = new WeakMap<KindDefinition, ValidateFunction>();

function validatorOf(kind: KindDefinition): ValidateFunction {
  let validate = validators.get(kind);
  if (!validate) {
    validate = ajv.compile(Type.Object({
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind.kind),
      metadata: Type.Object({ name: Type.Optional(Type.String()), namespace: Type.Optional(Type.String()) }),
      spec: kind.spec,
      status: Type.Optional(kind.status),
    }));
    validators.set(kind, validate);
  }
  return validate;
}

function describe(error: ErrorObject): string {
  const where = error.instancePath === '' ? 'the object' : error.instancePath.slice(1).replaceAll('/', '.');
  if (error.keyword === 'required') return `${where === 'the object' ? '' : `${where}.`}${String(error.params.missingProperty)} is required`;
  if (error.keyword === 'enum') return `${where} must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`;
  return `${where} ${error.message ?? 'is invalid'}`;
}

/** Checks that `value` is a well-formed object of `kind`, or throws naming the object and the field. */
export function parseResource<K extends KindDefinition>(kind: K, value: unknown): Resource<K> {
  const validate = validatorOf(kind);
  if (validate(value)) return value as Resource<K>;
  const meta = (value as { metadata?: { namespace?: string; name?: string } } | null)?.metadata;
  const name = meta?.name === undefined ? `a ${kind.kind}` : `${kind.kind} ${meta.namespace === undefined ? '' : `${meta.namespace}/`}${meta.name}`;
  const first = validate.errors?.[0];
  throw new InvalidResourceError(`${name} is invalid: ${first ? describe(first) : 'it does not match the schema'}; fix the object or recreate it.`);
}
