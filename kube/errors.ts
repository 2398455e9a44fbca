/** Errors of the Kubernetes plumbing: a code to branch on and a sentence that says what to do. */
export class KubeSetupError extends Error {
  override readonly name = 'KubeSetupError';
  readonly code = 'ARCA_KUBE_SETUP';
}

/** The API server answered with an HTTP status (client-node's ApiException, without its body's noise). */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own explanation (Status.message) of a failed request, else the error's message. */
export function apiMessageOf(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: unknown };
      if (typeof status.message === 'string') return status.message;
    } catch {
      return body;
    }
  }
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return err instanceof Error ? err.message : String(err);
}

/** Runs an entry point's body; a setup error (bad kubeconfig, bad address) becomes one line on stderr and exit 1. */
export async function reportingSetupErrors(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof KubeSetupError)) throw err;
    process.stderr.write(`${command}: ${err.message}\n`);
    return 1;
  }
}
