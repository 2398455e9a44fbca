// Status writes that are never lost to a concurrent writer: conditional on resourceVersion, and on
// a conflict the object is read again and the change applied to the fresh copy.
import { setTimeout as sleep } from 'node:timers/promises';
import type { KindDefinition, Resource } from './api/kinds.ts';
import { apiMessageOf, httpStatusOf } from './errors.ts';
import { identity, type ResourceClient } from './resources.ts';
import type { Static } from './api/fields.ts';

export class StatusConflictError extends Error {
  override readonly name = 'StatusConflictError';
  readonly code = 'ARCA_STATUS_CONFLICT';
}

export interface UpdateStatusOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** How long writes are retried while the API server is unreachable or not ready (default 60 s). */
  unavailableForMs?: number;
  /** Called before each retry: the attempt number that failed and the API server's reason. */
  onConflict?: (attempt: number, reason: string) => void;
}

/**
 * Writes `change(status)` through the status subresource, starting from `current` (which may
 * already be stale, e.g. an informer's copy). On 409 Conflict it reads the object again and applies
 * `change` to the fresh status, so `change` must be a function of the status it is given, not of
 * values captured from an earlier read. Returns the object as written.
 */
export async function updateStatus<K extends KindDefinition>(
  client: ResourceClient<K>,
  current: Resource<K>,
  change: (status: Static<K['status']>) => Static<K['status']>,
  options: UpdateStatusOptions = {},
): Promise<Resource<K>> {
  const attempts = options.attempts ?? 5;
  const { namespace, name } = identity(current);
  const unavailableUntil = Date.now() + (options.unavailableForMs ?? 60_000);
  let pause = 250;
  let object = current;
  for (let attempt = 1; ; attempt++) {
    const status = change(structuredClone(object.status ?? {}) as Static<K['status']>);
    try {
      return await client.replaceStatus({ ...object, status });
    } catch (err) {
      // A restarting API server refuses connections, then answers 503 or 429 for a few seconds: a
      // result written a little later is not lost (a job's Completed would otherwise wait for a resync).
      if (serverUnavailable(err) && Date.now() + pause < unavailableUntil) {
        await sleep(pause);
        pause = Math.min(pause * 2, 5_000);
        attempt--;
        continue;
      }
      if (httpStatusOf(err) !== 409) throw err;
      const reason = apiMessageOf(err);
      if (attempt >= attempts) {
        throw new StatusConflictError(`The status of ${client.kind.kind} ${namespace}/${name} kept changing under us (${attempts} conflicts in a row, last: ${reason}); it will be written on the next reconcile.`);
      }
      options.onConflict?.(attempt, reason);
      object = await client.get(namespace, name);
    }
  }
}

/** No answer (connection refused or reset), or the server's "not now" (429, 503). */
function serverUnavailable(err: unknown): boolean {
  const status = httpStatusOf(err);
  return status === undefined ? err instanceof TypeError : status === 429 || status === 503;
}
