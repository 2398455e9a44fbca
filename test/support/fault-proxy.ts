import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mulberry32 } from './seeded-random.ts';

/**
 * An HTTP reverse proxy on a free loopback port in front of an S3-compatible server (s3rver),
 * injecting faults into a given fraction of requests, for tests of a client's retries.
 *
 * Only faults that a correct client survives by trying again are injected:
 * - slowDown: 503 with an S3 `SlowDown` error body, without forwarding the request;
 * - reset: the client's connection is destroyed before any answer, either before the request is
 *   forwarded or after the server has carried it out (so the effect happened, the answer is lost);
 * - delay: the answer is held back 100–800 ms (nothing fails);
 * - truncate (GETs only): the status, the headers and part of the body are sent, then the
 *   connection is destroyed. A GET whose answer has no body to cut is reset instead.
 *
 * Faults are bounded: one request (method, path and query, Range) fails at most
 * `maxConsecutive` times in a row; the next attempt passes untouched. So a client that retries
 * more often than that always gets through, and a test failure is the client's, not bad luck.
 * Which requests fail comes from a PRNG seeded with `seed`: the same order of requests gets the
 * same faults (concurrent clients make that order vary from run to run).
 *
 * A test can also hold one chosen request (`hold`) until it releases it, to stop a client at a
 * known point of its work.
 */
export type FaultKind = 'slowDown' | 'reset' | 'delay' | 'truncate';

export interface FaultProxyOptions {
  /** The server's URL, e.g. http://127.0.0.1:PORT. */
  readonly upstream: string;
  /** Fraction of requests that get a fault, in [0, 1]. */
  readonly faultRate: number;
  readonly seed: number;
  /** Failed attempts in a row of one request after which the next one passes (default 2). */
  readonly maxConsecutive?: number;
}

export interface FaultProxyStats {
  /** Requests the proxy received. */
  readonly requests: number;
  /** Requests that got a fault, by kind. */
  readonly faults: Readonly<Record<FaultKind, number>>;
  /** Requests that were due a fault but had failed maxConsecutive times in a row already. */
  readonly spared: number;
  /** Requests the server itself did not answer (502 to the client). */
  readonly upstreamErrors: number;
  /** Requests whose client went away before the answer (a killed process, a client-side timeout). */
  readonly clientsGone: number;
  /** Server answers with a 5xx status (not the proxy's own), by status. */
  readonly serverErrors: Readonly<Record<number, number>>;
}

/** A request held back before it is forwarded, so that a test knows where its client stands. */
export interface HeldRequest {
  /** Resolves once a matching request has arrived; it is held from then on. */
  readonly reached: Promise<void>;
  /** Forwards the request (without a fault); its client carries on. */
  readonly release: () => void;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT, for --s3-endpoint. */
  readonly endpoint: string;
  readonly stats: () => FaultProxyStats;
  readonly setFaultRate: (rate: number) => void;
  /** Holds the next request for which `matches(method, url)` is true (the URL is path and query). */
  readonly hold: (matches: (method: string, url: string) => boolean) => HeldRequest;
  readonly stop: () => Promise<void>;
}

const MIN_DELAY_MS = 100;
const MAX_DELAY_MS = 800;
/** Headers that belong to one connection, not to the request or answer (RFC 9110 §7.6.1), and Expect. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect']);

function checkRate(rate: number): number {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`fault rate must be in [0, 1], not ${rate}`);
  return rate;
}

function forwardable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

const slowDownBody = (requestId: number): string => '<?xml version="1.0" encoding="UTF-8"?>\n'
  + `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy-${requestId}</RequestId></Error>`;

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== 'http:') throw new Error(`the fault proxy forwards to http:// only, not ${options.upstream}`);
  let faultRate = checkRate(options.faultRate);
  const maxConsecutive = options.maxConsecutive ?? 2;
  const random = mulberry32(options.seed);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const failuresInARow = new Map<string, number>();
  const counts = { requests: 0, spared: 0, upstreamErrors: 0, clientsGone: 0 };
  const faults: Record<FaultKind, number> = { slowDown: 0, reset: 0, delay: 0, truncate: 0 };
  const serverErrors: Record<number, number> = {};
  const holds: Array<{ readonly matches: (method: string, url: string) => boolean; readonly arrived: () => void; readonly released: Promise<void> }> = [];

  /** Forwards the request (its body streamed) and collects the whole answer. */
  const forward = (req: IncomingMessage): Promise<Answer> => new Promise((resolve, reject) => {
    const out = httpRequest({
      agent, host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: forwardable(req.headers),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => { chunks.push(chunk); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }); });
      res.on('error', reject);
    });
    out.on('error', reject);
    req.on('error', (err) => { out.destroy(err); });
    req.pipe(out);
  });

  const send = (res: ServerResponse, answer: Answer): void => {
    const headers = forwardable(answer.headers);
    // The body was collected whole: send its length rather than chunks (a HEAD keeps the object's).
    if (headers['content-length'] === undefined && answer.body.length > 0) headers['content-length'] = String(answer.body.length);
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  };

  const reset = (res: ServerResponse): void => {
    res.socket?.destroy();
  };

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  /** Chooses this request's fault, if any, and keeps the count of failures in a row per request. */
  const choose = (req: IncomingMessage): FaultKind | undefined => {
    const key = `${req.method ?? ''} ${req.url ?? ''} ${req.headers.range ?? ''}`;
    const before = failuresInARow.get(key) ?? 0;
    let kind: FaultKind | undefined;
    if (random() < faultRate) {
      const kinds: FaultKind[] = req.method === 'GET' ? ['slowDown', 'reset', 'delay', 'truncate'] : ['slowDown', 'reset', 'delay'];
      kind = kinds[Math.floor(random() * kinds.length)];
      if (kind !== 'delay' && before >= maxConsecutive) {
        counts.spared++;
        kind = undefined;
      }
    }
    if (kind === undefined || kind === 'delay') failuresInARow.delete(key);
    else failuresInARow.set(key, before + 1);
    return kind;
  };

  /** Waits for the test to release `req` if a hold matches it; returns whether one did. */
  const held = async (req: IncomingMessage): Promise<boolean> => {
    const at = holds.findIndex((h) => h.matches(req.method ?? '', req.url ?? ''));
    const [hold] = at < 0 ? [] : holds.splice(at, 1);
    if (hold === undefined) return false;
    hold.arrived();
    await hold.released;
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    counts.requests++;
    const id = counts.requests;
    const kind = await held(req) ? undefined : choose(req);
    if (kind !== undefined) faults[kind]++;
    if (kind === 'slowDown') {
      // Read the request body first, as S3 does, so the client is not cut off mid-upload.
      req.resume();
      await new Promise<void>((resolve) => { req.on('end', resolve); req.on('error', () => { resolve(); }); });
      const body = slowDownBody(id);
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'retry-after': '1' });
      res.end(body);
      return;
    }
    if (kind === 'reset' && random() < 0.5) {
      reset(res);
      return;
    }
    let answer: Answer;
    try {
      answer = await forward(req);
    } catch {
      if (!req.complete || res.destroyed) {
        counts.clientsGone++;
        return;
      }
      counts.upstreamErrors++;
      if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
      res.end();
      return;
    }
    if (answer.status >= 500) serverErrors[answer.status] = (serverErrors[answer.status] ?? 0) + 1;
    if (kind === 'reset') {
      reset(res); // The server carried the request out; the client never learns it.
      return;
    }
    if (kind === 'delay') await sleep(MIN_DELAY_MS + Math.floor(random() * (MAX_DELAY_MS - MIN_DELAY_MS + 1)));
    if (kind === 'truncate') {
      if (answer.status >= 300 || answer.body.length < 2) {
        // Nothing to cut short: fail the request the other survivable way.
        faults.truncate--;
        faults.reset++;
        reset(res);
        return;
      }
      // At least one byte and at most all but one; destroyed once they are handed to the kernel.
      const keep = 1 + Math.floor(random() * (answer.body.length - 1));
      res.writeHead(answer.status, { ...forwardable(answer.headers), 'content-length': String(answer.body.length) });
      res.write(answer.body.subarray(0, keep), () => { reset(res); });
      return;
    }
    send(res, answer);
  };

  const server = createServer((req, res) => {
    res.on('error', () => undefined);
    handle(req, res).catch(() => { reset(res); });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats: () => ({ requests: counts.requests, faults: { ...faults }, spared: counts.spared, upstreamErrors: counts.upstreamErrors, clientsGone: counts.clientsGone, serverErrors: { ...serverErrors } }),
    setFaultRate: (rate) => { faultRate = checkRate(rate); },
    hold: (matches) => {
      let arrived = (): void => undefined;
      let release = (): void => undefined;
      const reached = new Promise<void>((resolve) => { arrived = resolve; });
      const released = new Promise<void>((resolve) => { release = resolve; });
      holds.push({ matches, arrived, released });
      return { reached, release };
    },
    stop: async () => {
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
      server.closeAllConnections();
      await closed;
      agent.destroy();
    },
  };
}
