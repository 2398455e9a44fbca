import type { Storage } from '../../repository/storage/storage.ts';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A scripted HTTP server on a free loopback port, for the failures real servers do not produce on
 * demand: throttling, 5xx, dropped connections, no answer, a body that stalls.
 */
export interface FakeHttp {
  readonly endpoint: string;
  /** Requests received so far (a backend makes one attempt per call, so one per call). */
  readonly requests: () => number;
  close(): Promise<void>;
}

export type FakeHandler = (req: IncomingMessage, res: ServerResponse) => void;

export async function startFakeHttp(handler: () => FakeHandler): Promise<FakeHttp> {
  let count = 0;
  const server = createServer((req, res) => {
    count++;
    // Drain the request body so a handler that answers early does not stall the client's upload.
    req.resume();
    handler()(req, res);
  });
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}

/** Answers with a status, headers and an XML body. */
export function reply(status: number, body = '', headers: Record<string, string> = {}): FakeHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };
}

/** Drops the connection without an answer. */
export const reset: FakeHandler = (req) => { req.socket.destroy(); };

/** Never answers. */
export const hang: FakeHandler = () => undefined;

/** Sends headers and the first bytes of a body, then nothing more. */
export function stallBody(length: number, headers: Record<string, string> = {}): FakeHandler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length), ...headers });
    res.write(Buffer.alloc(Math.min(10, length)));
  };
}

/**
 * Runs one call against a storage whose every request `handler` answers, and reports how it
 * failed (undefined when it did not), how many requests it made and how long it took.
 */
export async function scriptedFailure<S>(
  handler: FakeHandler, open: (endpoint: string) => S, call: (storage: S) => Promise<unknown>,
): Promise<{ err: unknown; requests: number; ms: number }> {
  const fake = await startFakeHttp(() => handler);
  try {
    const storage = open(fake.endpoint);
    const started = performance.now();
    const err = await call(storage).then(() => undefined, (e: unknown) => e);
    return { err, requests: fake.requests(), ms: performance.now() - started };
  } finally {
    await fake.close();
  }
}

/** One call of each kind, for tables of failures that every kind must map the same way. */
export const storageCalls = {
  get: (s: Storage): Promise<unknown> => s.get('config'),
  put: (s: Storage): Promise<unknown> => s.put('config', Buffer.from('x')),
  stat: (s: Storage): Promise<unknown> => s.stat('config'),
  list: async (s: Storage): Promise<unknown> => {
    const names: string[] = [];
    for await (const o of s.list('')) names.push(o.name);
    return names;
  },
};
