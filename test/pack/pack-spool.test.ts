import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Archiver } from '../../agent/backup/archiver.ts';
import { WorkerPool, workerSetupFor } from '../../agent/pool/worker-pool.ts';
import { decodeBlob, encodeBlob } from '../../repository/blob/blob-codec.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import { newMasterKey } from '../../repository/crypto/master-key.ts';
import { PackSpool } from '../../repository/pack/pack-spool.ts';
import { packMatchesId, parsePack } from '../../repository/pack/pack-reader.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { SNAPSHOTS_PREFIX } from '../../repository/object-names.ts';
import { tempDir } from '../support/cli.ts';

describe('PackSpool', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-spool-')));
  afterEach(async () => cleanup());

  it('writes packs that read back like any other: name is the hash, header lists every blob at its offset', async () => {
    const keys = newMasterKey();
    const spool = new PackSpool(dir, keys.encKey, 256 << 10);
    // Small blobs (gathered into writes) and large ones (written straight, after what was
    // gathered before them), over four packs of at least 256 KiB.
    const plains = [1_000, 300_000, 10, 70_000, 5, 600_000, 20, 900_000, 50].map((size) => randomBytes(size));
    const packs = [];
    for (const plain of plains) {
      const sealed = encodeBlob(keys, plain, 3);
      const pack = spool.add('data', sealed.id, sealed.sealed, sealed.rawLength);
      if (pack) packs.push(pack);
    }
    const rest = spool.finish();
    if (rest) packs.push(rest);
    expect(spool.finish()).toBeUndefined();
    expect(packs.map((p) => p.blobs.length)).toEqual([2, 4, 2, 1]);
    let next = 0;
    for (const pack of packs) {
      const bytes = await fsp.readFile(pack.file);
      expect(bytes.length).toBe(pack.size);
      expect(packMatchesId(pack.id, bytes)).toBe(true);
      const listed = parsePack(keys.encKey, bytes);
      expect(listed.map(({ offset, length }) => ({ offset, length }))).toEqual(pack.blobs.map(({ offset, length }) => ({ offset, length })));
      for (const blob of listed) {
        const plain = decodeBlob(keys, bytes.subarray(blob.offset, blob.offset + blob.length), blob.id, blob.rawLength);
        expect(plain.equals(plains[next++] as Buffer)).toBe(true);
      }
    }
    expect(next).toBe(plains.length);
  });

  it('deletes the pack it was filling when told to give up', () => {
    const keys = newMasterKey();
    const spool = new PackSpool(dir, keys.encKey, 1 << 20);
    const sealed = encodeBlob(keys, randomBytes(100), 3);
    expect(spool.add('data', sealed.id, sealed.sealed, sealed.rawLength)).toBeUndefined();
    spool.abandon();
    expect(spool.finish()).toBeUndefined();
    return expect(fsp.readdir(dir)).resolves.toEqual([]);
  });
});

describe('a backup whose workers cannot spool', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-spool-fail-')));
  afterEach(async () => cleanup());

  it('fails with the reason, and saves no snapshot, rather than leaving out the files whose blobs were claimed', async () => {
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'big.bin'), randomBytes(3 << 20));
    await fsp.writeFile(path.join(src, 'sub', 'small.txt'), 'small\n');
    const storage = new LocalStorage(path.join(dir, 'repo'));
    const repo = await Repository.init(storage, Buffer.from('pw'));
    const missing = path.join(dir, 'no-such-spool');
    const pool = new WorkerPool(workerSetupFor(repo.keys, repo.config, { spoolDir: missing }), 2);
    try {
      const outcome = new Archiver(repo, pool, new BlobWriter(repo)).run({ paths: [src], host: 'test' });
      await expect(outcome).rejects.toThrow(/Cannot write a pack under .*no-such-spool/);
    } finally {
      await pool.close();
    }
    expect(existsSync(missing)).toBe(false);
    const snapshots = [];
    for await (const obj of storage.list(SNAPSHOTS_PREFIX)) snapshots.push(obj.name);
    expect(snapshots).toEqual([]);
  });
});
