import { randomBytes } from 'node:crypto';
import { blake3 } from '@napi-rs/blake-hash';
import { startS3Server } from '/work/main/test/support/s3-server.ts';
import { startFaultProxy } from '/work/main/test/support/fault-proxy.ts';
import { S3Storage } from '/work/main/repository/storage/s3.ts';
import { RetryingStorage, failureKind } from '/work/main/repository/storage/retrying.ts';

const s3 = await startS3Server();
const proxy = await startFaultProxy({ upstream: s3.endpoint, faultRate: 1, seed: 7, maxConsecutive: 2 });
const inner = new S3Storage({ scheme: 's3', bucket: s3.bucket, prefix: 'p/', endpoint: proxy.endpoint, forcePathStyle: true, region: 'us-east-1',
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, checksumsWhenRequired: true });
const kinds = new Map<string, number>();
const storage = new RetryingStorage(inner, { baseDelayMs: 5, onRetry: (e) => { const k = `${e.operation}:${failureKind(e.error)}:${e.error.message.slice(0, 80)}`; kinds.set(k, (kinds.get(k) ?? 0) + 1); } });
for (let i = 0; i < 30; i++) {
  const data = randomBytes(1 + (i * 100_000));
  const name = `data/${blake3(data).toString('hex')}`;
  await storage.put(name, data);
  const back = await storage.get(name);
  if (!back.equals(data)) throw new Error('mismatch whole');
  const r = await storage.get(name, { offset: 0, length: Math.max(1, data.length >> 1) });
  if (!r.equals(data.subarray(0, Math.max(1, data.length >> 1)))) throw new Error('mismatch range');
  await storage.stat(name);
  const names = [];
  for await (const o of storage.list('data/')) names.push(o.name);
  if (!names.includes(name)) throw new Error('list');
}
for await (const o of storage.list('data/')) await storage.delete(o.name);
// Permanent errors must survive: not found
try { await storage.get('data/' + '0'.repeat(64)); throw new Error('should fail'); } catch (e) { console.log('missing ->', (e as Error).constructor.name); }
console.log(proxy.stats());
console.log([...kinds].sort());
await proxy.stop();
await s3.stop();
