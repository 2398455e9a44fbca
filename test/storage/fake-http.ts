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
