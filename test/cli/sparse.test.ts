import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';
import { floorMicros } from '../support/fs-tree.ts';

const GiB = 1 << 30;
/** A few bytes at some offsets of an otherwise empty 1 GiB file, the last ones ending it. */
const MARKS: ReadonlyArray<readonly [number, Buffer]> = [
  [0, Buffer.from('first bytes')],
  [123_456_789, Buffer.from('somewhere in the first quarter')],
  [GiB / 2 + 7, Buffer.from([1, 2, 3, 4, 5, 0, 0, 0, 255])],
  [GiB - 4, Buffer.from('end!')],
];

describe('sparse files', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir('arca-sparse-')));
  afterEach(async () => cleanup());

  it('restores a 1 GiB file of holes with identical content, and keeps it sparse', async () => {
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    const file = path.join(src, 'sparse.img');
    await fsp.mkdir(src);
    const handle = await fsp.open(file, 'w');
    try {
      await handle.truncate(GiB);
      for (const [offset, bytes] of MARKS) await handle.write(bytes, 0, bytes.length, offset);
    } finally {
      await handle.close();
    }
    const before = await fsp.stat(file, { bigint: true });
    expect(before.size).toBe(BigInt(GiB));
    expect(before.blocks * 512n).toBeLessThan(1 << 20); // the source really is sparse

    await arcaOk(['init', '--repo', repo]);
    const summary = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout);
    expect(summary).toMatchObject({ files_new: 1, total_files_processed: 1, total_bytes_processed: GiB });
    expect(summary.data_added).toBeLessThan(1 << 20); // zeros dedup and compress to almost nothing

    const target = path.join(dir, 'target');
    const restore = summaryOf((await arcaOk(['restore', 'latest', '--repo', repo, '--target', target, '--verify', '--json'])).stdout);
    expect(restore).toMatchObject({ errors: 0, files_restored: 1, files_verified: 1 });
    const restored = path.join(target, file);
    const after = await fsp.stat(restored, { bigint: true });
    expect(after.size).toBe(BigInt(GiB));
    expect(floorMicros(after.mtimeNs)).toBe(floorMicros(before.mtimeNs));
    // Only the chunks around the marks hold data: far less than the size.
    expect(after.blocks * 512n).toBeLessThan(GiB / 16);

    // Byte for byte: the marks where they were, zeros everywhere else.
    const expected = Buffer.alloc(16 << 20);
    const got = Buffer.alloc(16 << 20);
    const reader = await fsp.open(restored, 'r');
    try {
      for (let at = 0; at < GiB; at += got.length) {
        expected.fill(0);
        for (const [offset, bytes] of MARKS) {
          if (offset + bytes.length > at && offset < at + expected.length) bytes.copy(expected, offset - at);
        }
        const { bytesRead } = await reader.read(got, 0, got.length, at);
        expect(bytesRead).toBe(got.length);
        if (!got.equals(expected)) expect.fail(`content differs in the 16 MiB block at offset ${at}`);
      }
      expect((await reader.read(Buffer.alloc(1), 0, 1, GiB)).bytesRead).toBe(0);
    } finally {
      await reader.close();
    }
  });
});
