// /healthz (the process answers), /readyz (its checks pass) and Prometheus /metrics, on one port.
import { fastify, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { KubeSetupError } from './errors.ts';

/** A readiness check: undefined when ready, else why not. */
export type ReadinessCheck = () => string | undefined;

export interface HealthServerOptions {
  /** `host:port`, `:port` (all interfaces) or `[::1]:port`; port 0 picks a free one. */
  address: string;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
}

export interface HealthServer {
  /** The URL actually bound, e.g. `http://127.0.0.1:8085`. */
  readonly url: string;
  close(): Promise<void>;
}

export function parseListenAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new KubeSetupError(`The listen address "${address}" is not HOST:PORT or :PORT; use for example :8080 or 127.0.0.1:8080.`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { host, port } = parseListenAddress(options.address);
  const app: FastifyInstance = fastify({ logger: false });
  app.get('/healthz', (_request, reply) => reply.type('text/plain').send('ok\n'));
  app.get('/readyz', async (_request, reply) => {
    const failing = Object.entries(options.readiness).flatMap(([name, check]) => {
      const reason = check();
      return reason === undefined ? [] : [`${name}: ${reason}`];
    });
    if (failing.length > 0) return reply.code(503).type('text/plain').send(`not ready\n${failing.join('\n')}\n`);
    return reply.type('text/plain').send('ok\n');
  });
  app.get('/metrics', async (_request, reply) => reply.type(options.registry.contentType).send(await options.registry.metrics()));
  await app.listen({ host, port });
  const bound = app.server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${urlHost}:${boundPort}`, close: () => app.close() };
}
