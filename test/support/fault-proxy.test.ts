import { randomBytes } from 'node:crypto';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';

/** The fault proxy itself, in front of a small HTTP server: what each fault looks like to a client, and its bounds. */

const BODY = randomBytes(200_000);
let upstream: Server;
let upstreamUrl: string;
const proxies: FaultProxy[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => { chunks.push(c); });
    req.on('end', () => {
      if (req.method === 'PUT') {
        const got = Buffer.concat(chunks);
        res.writeHead(200, { 'content-length': 0, 'x-received': String(got.length), 'x-same': String(got.equals(BODY)) });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-length': BODY.length, 'content-type': 'application/octet-stream' });
      res.end(req.method === 'HEAD' ? undefined : BODY);
    });
  });
  await new Promise<void>((resolve) => { upstream.listen(0, '127.0.0.1', resolve); });
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

async function proxyWith(faultRate: number, seed = 1): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ upstream: upstreamUrl, faultRate, seed });
  proxies.push(proxy);
  return proxy;
}

type Outcome =
  | { kind: 'ok'; status: number; body: Buffer; headers: Record<string, string | string[] | undefined>; ms: number }
  | { kind: 'slowDown'; status: number; body: string }
  | { kind: 'reset' }
  | { kind: 'truncated'; got: number; promised: number };

const agent = new Agent({ keepAlive: true });

/** One request as a client sees it. */
function attempt(endpoint: string, method: string, path: string, body?: Buffer): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(`${endpoint}${path}`, { method, agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { chunks.push(c); });
      res.on('error', () => {
        resolve({ kind: 'truncated', got: Buffer.concat(chunks).length, promised: Number(res.headers['content-length']) });
      });
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        if (res.statusCode === 503) resolve({ kind: 'slowDown', status: 503, body: all.toString('utf8') });
        else resolve({ kind: 'ok', status: res.statusCode ?? 0, body: all, headers: res.headers, ms: performance.now() - started });
      });
    });
    req.on('error', () => { resolve({ kind: 'reset' }); });
    req.end(body);
  });
}

describe('fault proxy', () => {
  it('passes requests through unchanged at rate 0 and counts them', async () => {
    const proxy = await proxyWith(0);
    const get = await attempt(proxy.endpoint, 'GET', '/bucket/key');
    expect(get.kind === 'ok' && get.body.equals(BODY)).toBe(true);
    const head = await attempt(proxy.endpoint, 'HEAD', '/bucket/key');
    expect(head.kind === 'ok' ? [head.status, head.headers['content-length'], head.body.length] : head).toEqual([200, String(BODY.length), 0]);
    const put = await attempt(proxy.endpoint, 'PUT', '/bucket/key', BODY);
    expect(put.kind === 'ok' ? [put.headers['x-received'], put.headers['x-same']] : put).toEqual([String(BODY.length), 'true']);
    expect(proxy.stats()).toMatchObject({ requests: 3, faults: { slowDown: 0, reset: 0, delay: 0, truncate: 0 }, upstreamErrors: 0 });
  });

  it('at rate 1 injects every kind, each as a client sees it, never more than twice in a row for one request', async () => {
    const proxy = await proxyWith(1, 42);
    const seen = { ok: 0, slowDown: 0, reset: 0, truncated: 0, delayed: 0 };
    let inARow = 0;
    let longest = 0;
    for (let i = 0; i < 60; i++) {
      const outcome = await attempt(proxy.endpoint, 'GET', '/bucket/same-key');
      if (outcome.kind === 'ok') {
        expect(outcome.body.equals(BODY)).toBe(true);
        seen.ok++;
        if (outcome.ms >= 100) seen.delayed++;
        inARow = 0;
        continue;
      }
      inARow++;
      longest = Math.max(longest, inARow);
      if (outcome.kind === 'slowDown') expect(outcome.body).toMatch(/<Error><Code>SlowDown<\/Code>/);
      if (outcome.kind === 'truncated') {
        expect(outcome.promised).toBe(BODY.length);
        expect(outcome.got).toBeLessThan(BODY.length);
      }
      seen[outcome.kind]++;
    }
    expect(longest).toBe(2);
    const stats = proxy.stats();
    expect(stats.requests).toBe(60);
    expect(seen).toMatchObject({ slowDown: stats.faults.slowDown, reset: stats.faults.reset, truncated: stats.faults.truncate });
    // A delayed request succeeds, late: every delay is one of the successes that took 100 ms or more.
    expect(seen.delayed).toBeGreaterThanOrEqual(stats.faults.delay);
    expect(stats.faults.delay).toBeGreaterThan(0);
    expect(stats.spared).toBeGreaterThan(0);
    for (const n of Object.values(stats.faults)) expect(n).toBeGreaterThan(0);
    // Only GETs are truncated.
    const before = proxy.stats().faults.truncate;
    for (let i = 0; i < 12; i++) await attempt(proxy.endpoint, 'PUT', `/bucket/put-${i}`, BODY);
    expect(proxy.stats().faults.truncate).toBe(before);
  });

  it('chooses the same faults for the same requests with the same seed, and none after setFaultRate(0)', async () => {
    const run = async (proxy: FaultProxy): Promise<string[]> => {
      const kinds: string[] = [];
      for (let i = 0; i < 40; i++) kinds.push((await attempt(proxy.endpoint, 'GET', `/bucket/k${i}`)).kind);
      return kinds;
    };
    const [a, b] = [await proxyWith(0.5, 7), await proxyWith(0.5, 7)];
    const first = await run(a);
    expect(await run(b)).toEqual(first);
    expect(first.filter((k) => k !== 'ok').length).toBeGreaterThan(0);
    a.setFaultRate(0);
    expect(new Set(await run(a))).toEqual(new Set(['ok']));
    expect(() => { a.setFaultRate(1.5); }).toThrow(RangeError);
  });

  it('holds the first matching request until released, without a fault, and lets the others by', async () => {
    const proxy = await proxyWith(1, 3);
    const held = proxy.hold((method, url) => method === 'PUT' && url.startsWith('/bucket/data/'));
    let settled = false;
    const put = attempt(proxy.endpoint, 'PUT', '/bucket/data/one', BODY).finally(() => { settled = true; });
    await held.reached;
    // A request that does not match, and a second matching one, complete (with their faults) meanwhile.
    await attempt(proxy.endpoint, 'HEAD', '/bucket/data/one');
    await attempt(proxy.endpoint, 'PUT', '/bucket/data/two', BODY);
    expect(settled).toBe(false);
    expect(proxy.stats().requests).toBe(3);
    held.release();
    // Released, it goes through whole although every request is due a fault.
    const outcome = await put;
    expect(outcome.kind === 'ok' ? [outcome.headers['x-received'], outcome.headers['x-same']] : outcome).toEqual([String(BODY.length), 'true']);
  });
});
