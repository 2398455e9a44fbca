import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Archiver } from '../../engine/backup/archiver.ts';
import { WorkerPool, workerSetupFor } from '../../engine/pool/worker-pool.ts';
import { decodeBlob, encodeBlob } from '../../repository/blob/blob-codec.ts';
import { BlobWriter } from '../../repository/blob-writer.ts';
import { newMasterKey } from '../../repository/crypto/master-key.ts';
import { PackSpool, removeStaleSpools } from '../../repository/pack/pack-spool.ts';
import { packMatchesId, parsePack } from '../../repository/pack/pack-reader.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { SNAPSHOTS_PREFIX } from '../../repository/object-names.ts';
import { arcaOk, tempDir } from '../support/cli.ts';
import { STALE_SPOOL_MS } from '../../engine/backup/spool-dir.ts';

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

describe('spools left by killed backups', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-stale-')));
  afterEach(async () => cleanup());

  it('are deleted by the next backup of a local repository once a day old; fresh ones and other files stay', async () => {
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'a.txt'), 'a\n');
    const repo = path.join(dir, 'repo');
    await arcaOk(['init', '--repo', repo]);
    await fsp.mkdir(path.join(repo, 'data'), { recursive: true });
    const left = path.join(repo, 'data', 'pack-0123456789abcdef.arca-tmp');
    const live = path.join(repo, 'data', 'pack-fedcba9876543210.arca-tmp');
    const other = path.join(repo, 'data', 'notes-0123456789abcdef.arca-tmp');
    for (const file of [left, live, other]) await fsp.writeFile(file, 'partial pack');
    const twoDaysAgo = new Date(Date.now() - 2 * STALE_SPOOL_MS);
    await fsp.utimes(left, twoDaysAgo, twoDaysAgo);
    await fsp.utimes(other, twoDaysAgo, twoDaysAgo);
    await arcaOk(['backup', '--repo', repo, src]);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(other)).toBe(true);
    await arcaOk(['check', '--repo', repo]);
  });

  it('are found only under their own names, and only when old enough', async () => {
    const now = Date.now();
    const names = ['pack-00000000000000aa.arca-tmp', 'pack-00000000000000bb.arca-tmp', 'pack-short.arca-tmp', 'pack-00000000000000cc.arca-tmp.x'];
    for (const name of names) await fsp.writeFile(path.join(dir, name), 'x');
    const old = new Date(now - 2 * STALE_SPOOL_MS);
    for (const name of [names[0], names[2], names[3]]) await fsp.utimes(path.join(dir, name as string), old, old);
    expect(await removeStaleSpools(dir, STALE_SPOOL_MS, now)).toBe(1);
    expect((await fsp.readdir(dir)).sort()).toEqual([names[1], names[2], names[3]].sort());
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
