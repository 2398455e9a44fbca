// Schema pieces shared by several kinds. Every schema here is also a valid Kubernetes *structural*
// schema (a `type` on every node, no anyOf/patternProperties, no additionalProperties: false), so
// the CRD generator can copy them as they are.
import Type, { type TSchema, type TSchemaOptions } from 'typebox';

/** A string restricted to the given values (`Type.Enum` plus the `type` the API server requires). */
export function StringEnum<const V extends string[]>(values: readonly [...V], options: TSchemaOptions = {}) {
  return Type.Enum(values, { ...options, type: 'string' });
}

/** A string-to-string map (labels, selectors, namespace mappings). */
export function StringMap(options: TSchemaOptions = {}) {
  return Type.Unsafe<Record<string, string>>({ ...options, type: 'object', additionalProperties: { type: 'string' } });
}

/** An RFC 3339 time as the API server writes it (`metav1.Time`). */
export function Timestamp(description: string) {
  return Type.String({ format: 'date-time', description });
}

/** A count of bytes or files: never negative, 64-bit in the API server. */
export function Count(description: string) {
  return Type.Integer({ minimum: 0, format: 'int64', description });
}

export function Name(description: string) {
  return Type.String({ minLength: 1, maxLength: 253, description });
}

/**
 * Five-field cron (minute hour day-of-month month day-of-week) with lists, ranges and steps, month
 * and weekday names, or one of the @-macros. Checked by the API server at admission; the controller
 * still parses it with croner, which is the final word.
 */
const names = (list: string[]): string => list.flatMap((n) => [n, n.toLowerCase()]).join('|');
const cronField = (value: string): string => {
  const item = `(\\*|\\?|${value}(-${value})?)(/[0-9]+)?`;
  return `${item}(,${item})*`;
};
const CRON_FIELDS = [
  '([0-5]?[0-9])', // minute
  '(2[0-3]|[01]?[0-9])', // hour
  '(3[01]|[12][0-9]|0?[1-9]|L|[0-9]+W)', // day of month
  `(1[0-2]|0?[1-9]|${names(['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'])})`, // month
  `(([0-7]|${names(['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'])})(#[1-5]|L)?)`, // day of week
];
export const CRON_PATTERN = `^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|${CRON_FIELDS.map(cronField).join(' ')})$`;

export function Cron(description: string) {
  return Type.String({ pattern: CRON_PATTERN, maxLength: 256, description });
}

/** A Go-style duration: `90s`, `15m`, `1h30m`, `7d` is not one (days are `168h`). */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
export function Duration(description: string) {
  return Type.String({ pattern: DURATION_PATTERN, description });
}

/** An IANA time zone name such as `Europe/Paris`; validated by the controller. */
export function TimeZone() {
  return Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_+\\-]+(/[A-Za-z0-9_+\\-]+)*$', description: 'IANA time zone of the cron expression (default UTC).' });
}

export const PodReference = Type.Object({
  namespace: Name('Namespace of the pod.'),
  name: Name('Name of the pod.'),
  uid: Type.String({ minLength: 1, description: 'UID of the pod: its volumes live under <pods-dir>/<uid>/volumes.' }),
}, { description: 'The pod whose volume this object is about.' });

export const WorkloadReference = Type.Object({
  kind: Type.String({ minLength: 1, description: 'Kind of the controller that owns the pod (StatefulSet, Deployment, ...).' }),
  name: Name('Name of that controller.'),
}, { description: 'The workload that owns the pod, so a volume is followed across pod restarts.' });

/** A key in a Secret of the controller's namespace. */
export function SecretKeyReference(description: string) {
  return Type.Object({
    name: Name('Secret in the controller namespace.'),
    key: Type.String({ minLength: 1, description: 'Key in that Secret.' }),
  }, { description });
}

/** A whole Secret of the controller's namespace. */
export function SecretReference(description: string) {
  return Type.Object({ name: Name('Secret in the controller namespace.') }, { description });
}

export const LabelSelector = Type.Object({
  matchLabels: Type.Optional(StringMap({ description: 'Labels that must all be present with these values.' })),
  matchExpressions: Type.Optional(Type.Array(Type.Object({
    key: Type.String({ minLength: 1 }),
    operator: StringEnum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: Type.Optional(Type.Array(Type.String())),
  }))),
}, { description: 'A standard Kubernetes label selector.' });

export const Condition = Type.Object({
  type: Type.String({ minLength: 1 }),
  status: StringEnum(['True', 'False', 'Unknown']),
  reason: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
  lastTransitionTime: Type.Optional(Timestamp('When the condition last changed status.')),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0, format: 'int64' })),
});

export const Progress = Type.Object({
  bytesDone: Count('Bytes read (backup) or written (restore) so far.'),
  bytesTotal: Count('Bytes expected in all; grows while a backup is still scanning.'),
  filesDone: Type.Optional(Count('Files done so far.')),
  filesTotal: Type.Optional(Count('Files expected in all.')),
  bytesPerSecond: Type.Optional(Count('Recent throughput.')),
  percent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'bytesDone as a percentage of bytesTotal (the Progress column).' })),
}, { description: 'Progress of the running job, updated every few seconds.' });

/** Counts of per-volume objects, for the objects that fan out to them. */
export const VolumeCounts = Type.Object({
  total: Count('Volumes selected.'),
  completed: Type.Optional(Count('Volumes done.')),
  partiallyFailed: Type.Optional(Count('Volumes done with unreadable files.')),
  failed: Type.Optional(Count('Volumes failed.')),
  canceled: Type.Optional(Count('Volumes canceled.')),
});

export type Static<T extends TSchema> = Type.Static<T>;
