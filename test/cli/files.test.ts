import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot } from '../support/as-user.ts';
import { arcaOk, summaryOf, tempDir } from '../support/cli.ts';
import { asObject, escapeBytes, scanTree, type ScannedEntry } from '../support/fs-tree.ts';

const run = promisify(execFile);
const b = (...parts: Array<string | Buffer>): Buffer => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
/** Bytes that are not valid UTF-8 (a lone continuation byte, 0xff, 0xfe, an overlong "/"). */
const NOT_UTF8 = Buffer.from([0x80, 0xff, 0xfe, 0xc0, 0xaf]);

interface NodeLine {
  readonly message_type: string;
  readonly path: string;
  readonly type: string;
}

/** A unix socket at `p`, listening until closed (closing removes the socket file). */
async function listenOn(p: string): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, resolve);
  });
  return server;
}

async function closeServer(server: net.Server): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.close((err) => {
      if (err) reject(err);
      else resolve();
    });
  });
}

describe('backup and restore of every kind of file', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  let src: string;
  let target: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('arca-files-'));
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    target = path.join(dir, 'target');
    await fsp.mkdir(src);
    await arcaOk(['init', '--repo', repo]);
  });
  afterEach(async () => cleanup());

  async function backup(): Promise<string> {
    const summary = summaryOf((await arcaOk(['backup', '--repo', repo, '--json', src])).stdout);
    expect(typeof summary.snapshot_id).toBe('string');
    return String(summary.snapshot_id);
  }

  async function restore(snapshot: string): Promise<Record<string, unknown>> {
    const summary = summaryOf((await arcaOk(['restore', snapshot, '--repo', repo, '--target', target, '--verify', '--json'])).stdout);
    expect(summary).toMatchObject({ message_type: 'summary', errors: 0 });
    return summary;
  }

  async function lsNodes(snapshot: string): Promise<NodeLine[]> {
    const lines = (await arcaOk(['ls', snapshot, '--repo', repo, '--json'])).stdout.trim().split('\n');
    return lines.map((l) => JSON.parse(l) as NodeLine).filter((l) => l.message_type === 'node');
  }

  it('restores odd names byte for byte: non-UTF-8, control characters, dashes, unicode, 255 bytes, 100 levels deep', async () => {
    const srcBuf = Buffer.from(src);
    const at = (...parts: Array<string | Buffer>): Buffer => b(srcBuf, ...parts.flatMap((part) => [Buffer.from('/'), Buffer.isBuffer(part) ? part : Buffer.from(part)]));
    const names: Array<string | Buffer> = [
      b('latin1-', NOT_UTF8, '.txt'),
      'line\nbreak', 'tab\there', 'carriage\rreturn', ' leading and trailing spaces ', '-leading-dash', '--', '-rf',
      'ünïcødé-日本語-🎉', 'caf\u00e9', 'cafe\u0301', // NFC and NFD spellings are two different names
      'x'.repeat(255), '€'.repeat(85), // 255 bytes each
      'back\\slash', 'glob[a-z]*?{x,y}', '.hidden', '...', 'quote"\'`$(echo)', '\x01\x1b[31mescape',
    ];
    for (const [i, name] of names.entries()) await fsp.writeFile(at(name), `file ${i}\n`);
    // A directory, a symlink (name and target) and a hardlink with non-UTF-8 bytes.
    await fsp.mkdir(at(b('dir-', NOT_UTF8)));
    await fsp.writeFile(at(b('dir-', NOT_UTF8), b('inner-', NOT_UTF8)), 'inside a non-UTF-8 directory\n');
    await fsp.symlink(b('target-', NOT_UTF8), at(b('link-', NOT_UTF8)));
    await fsp.link(at(b('latin1-', NOT_UTF8, '.txt')), at(b('dir-', NOT_UTF8), b('hardlink-', NOT_UTF8)));
    await fsp.mkdir(at('dir with\nnewline'));
    await fsp.symlink('line\nbreak', at('dir with\nnewline', 'link\nto newline name'));
    await run('mkfifo', ['--', at('-fifo\nwith newline').toString()]);
    // 100 levels of directories with a file at the bottom.
    const levels = Array.from({ length: 100 }, (_, i) => `level-${String(i).padStart(3, '0')}`);
    await fsp.mkdir(at(...levels), { recursive: true });
    await fsp.writeFile(at(...levels, 'bottom.txt'), 'the bottom\n');

    const source = await scanTree(src);
    expect(source.size).toBeGreaterThan(names.length + 100);
    const snapshot = await backup();
    await restore(snapshot);
    const restored = await scanTree(path.join(target, src));
    expect(asObject(restored)).toEqual(asObject(source));

    // The names really are the same bytes (not just the same after escaping).
    const restoredNames = await fsp.readdir(b(target, srcBuf), { encoding: 'buffer' });
    const sourceNames = await fsp.readdir(srcBuf, { encoding: 'buffer' });
    expect(restoredNames.map((n) => n.toString('hex')).sort()).toEqual(sourceNames.map((n) => n.toString('hex')).sort());
    expect(sourceNames.some((n) => n.equals(b('latin1-', NOT_UTF8, '.txt')))).toBe(true);
    expect(await fsp.readlink(b(target, at(b('link-', NOT_UTF8))), { encoding: 'buffer' })).toEqual(b('target-', NOT_UTF8));
    expect(await fsp.readFile(b(target, at(...levels, 'bottom.txt')), 'utf8')).toBe('the bottom\n');
  });

  it('restores modification times to the microsecond, before 1970 and after 2038 too', async () => {
    // Nanosecond times set with touch(1); each on or next to a microsecond boundary, where a
    // float conversion that lands a hair low loses a whole microsecond.
    const times = [
      '1700000000.123456000', '1700000000.123456999', '1700000000.000000000', '1700000000.999999000', '1700000000.000001000',
      '1234567890.000001000', '1000000000.100000000', '1.000001000', '0.000001000', '0.000000000',
      '-1.000000000', '-0.000001000', '-310157632.109000000', '-310157632.109000500', '-2000000000.999999999',
      '2147483647.999999999', '2147483648.000001000', '4000000000.000001000', '4294967295.999999000',
    ];
    // And a batch of microsecond-exact times with scattered digits (a fixed LCG, so failures repeat).
    let x = 12345;
    for (let i = 0; i < 40; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      times.push(`${1_600_000_000 + i * 7_777_777}.${String(x % 1_000_000).padStart(6, '0')}000`);
    }
    const touch = (p: string, t: string): Promise<unknown> => run('touch', ['-h', '-d', `@${t}`, '--', p]);
    for (const [i, t] of times.entries()) {
      const p = path.join(src, `file-${i}`);
      await fsp.writeFile(p, `${t}\n`);
      await touch(p, t);
    }
    await fsp.mkdir(path.join(src, 'dir'));
    await fsp.symlink('file-0', path.join(src, 'dir', 'link'));
    await run('mkfifo', ['--', path.join(src, 'dir', 'fifo')]);
    await touch(path.join(src, 'dir', 'link'), '-1.000001000');
    await touch(path.join(src, 'dir', 'fifo'), '1700000000.123456000');
    await touch(path.join(src, 'dir'), '-86400.000001000');
    await touch(src, '1700000000.000001000');
    const source = await scanTree(src);
    expect(source.get('file-13')?.mtimeUs).toBe(-310157633n * 1_000_000n + 890_999n); // the scanner floors
    const snapshot = await backup();
    await restore(snapshot);
    const restored = await scanTree(path.join(target, src));
    const mtimes = (scan: Map<string, ScannedEntry>): Record<string, bigint> => Object.fromEntries([...scan].map(([k, v]) => [k, v.mtimeUs]));
    expect(mtimes(restored)).toEqual(mtimes(source));
  });

  // mknod and chown need root; CI runs as root, so these run there.
  describe.skipIf(!isRoot)('devices and other owners (needs root: mknod, chown)', () => {
    it('restores regular, empty, device, FIFO, symlink and hardlinked files with their metadata; skips sockets', async () => {
      const p = (name: string): string => path.join(src, name);
      await fsp.writeFile(p('regular.txt'), 'hello, world\n');
      await fsp.writeFile(p('big.bin'), randomBytes(5 << 20)); // several chunks
      await fsp.writeFile(p('empty'), '');
      await fsp.mkdir(p('empty-dir'));
      await fsp.mkdir(p('dir/sub'), { recursive: true });
      await fsp.writeFile(p('dir/sub/inner.txt'), 'inner\n');
      await fsp.symlink('regular.txt', p('link-relative'));
      await fsp.symlink('/etc/passwd', p('link-absolute'));
      await fsp.symlink('does/not/exist', p('link-dangling'));
      await fsp.symlink('dir', p('link-to-dir'));
      await fsp.symlink('../../regular.txt', p('dir/sub/link-up'));
      await run('mkfifo', ['--', p('fifo')]);
      await run('mknod', ['--', p('null-device'), 'c', '1', '3']);
      // Device numbers past 8 bits (major) and 16 bits (minor), which a naive encoding loses.
      await run('mknod', ['--', p('big-char-device'), 'c', '4095', '1048575']);
      await run('mknod', ['--', p('block-device'), 'b', '259', '65536']);
      const server = await listenOn(p('socket'));
      await fsp.writeFile(p('hard-a'), 'two names, one inode\n');
      await fsp.link(p('hard-a'), p('dir/hard-b'));
      await fsp.writeFile(p('hard-empty-a'), '');
      await fsp.link(p('hard-empty-a'), p('hard-empty-b'));
      // Modes, owners and times that a careless restore would lose.
      await fsp.chmod(p('regular.txt'), 0o640);
      await fsp.chown(p('regular.txt'), 1234, 5678);
      await fsp.chown(p('dir/sub/inner.txt'), 4321, 0);
      await fsp.lchown(p('link-relative'), 2000, 3000);
      await fsp.chown(p('fifo'), 7, 8);
      await fsp.chmod(p('fifo'), 0o620);
      await fsp.chmod(p('null-device'), 0o666);
      await fsp.writeFile(p('setuid'), '#!/bin/sh\n');
      await fsp.chown(p('setuid'), 1000, 1000);
      await fsp.chmod(p('setuid'), 0o6755);
      await fsp.writeFile(p('no-permissions'), 'root reads it anyway\n');
      await fsp.chmod(p('no-permissions'), 0o000);
      await fsp.mkdir(p('sticky'));
      await fsp.chmod(p('sticky'), 0o1777);
      await fsp.mkdir(p('setgid-dir'));
      await fsp.chown(p('setgid-dir'), 0, 4242);
      await fsp.chmod(p('setgid-dir'), 0o2775);
      await fsp.writeFile(p('setgid-dir/owned-elsewhere'), 'x');
      await fsp.chown(p('setgid-dir/owned-elsewhere'), 5, 6);
      await fsp.chmod(p('empty-dir'), 0o750);
      await fsp.chown(p('empty-dir'), 99, 98);
      await fsp.chmod(p('dir/sub'), 0o500); // no write permission: children are restored before it
      await fsp.utimes(p('empty'), new Date('1960-03-04T05:06:07.891Z'), new Date('1960-03-04T05:06:07.891Z'));
      await fsp.utimes(p('big.bin'), 4_000_000_000.25, 4_000_000_000.25); // after 2038
      await fsp.lutimes(p('link-dangling'), 1_234_567_890, 1_234_567_890);
      await fsp.utimes(p('empty-dir'), 1_000_000_000, 1_000_000_000);

      let snapshot: string;
      let source: Map<string, ScannedEntry>;
      try {
        snapshot = await backup();
        source = await scanTree(src);
      } finally {
        await closeServer(server);
      }
      expect(source.get('socket')?.type).toBe('socket');
      expect(source.get('hard-a')).toMatchObject({ nlink: 2, sameInodeAs: ['dir/hard-b'] });

      // The socket is in the snapshot, as metadata.
      const nodes = await lsNodes(snapshot);
      const typeOf = (name: string): string | undefined => nodes.find((n) => n.path === `${src}/${name}`)?.type;
      expect(typeOf('socket')).toBe('socket');
      expect(typeOf('fifo')).toBe('fifo');
      expect(typeOf('null-device')).toBe('chardev');
      expect(typeOf('block-device')).toBe('blockdev');
      expect(typeOf('link-dangling')).toBe('symlink');

      await restore(snapshot);
      const restoredRoot = path.join(target, src);
      const restored = await scanTree(restoredRoot);
      const expected = new Map(source);
      expected.delete('socket');
      expect(asObject(restored)).toEqual(asObject(expected));

      // Spot checks that do not go through the scanner.
      expect(await fsp.lstat(path.join(restoredRoot, 'socket')).catch((err: unknown) => (err as NodeJS.ErrnoException).code)).toBe('ENOENT');
      expect(await fsp.readlink(path.join(restoredRoot, 'link-absolute'))).toBe('/etc/passwd');
      expect((await fsp.lstat(path.join(restoredRoot, 'link-absolute'))).isSymbolicLink()).toBe(true);
      expect((await fsp.lstat(path.join(restoredRoot, 'link-to-dir'))).isSymbolicLink()).toBe(true);
      const [ha, hb] = await Promise.all([fsp.stat(path.join(restoredRoot, 'hard-a')), fsp.stat(path.join(restoredRoot, 'dir/hard-b'))]);
      expect(hb.ino).toBe(ha.ino);
      expect(ha.nlink).toBe(2);
      const dev = await fsp.stat(path.join(restoredRoot, 'null-device'));
      expect(dev.isCharacterDevice()).toBe(true);
      expect(dev.rdev).toBe((await fsp.stat('/dev/null')).rdev);
      expect((await fsp.lstat(path.join(restoredRoot, 'fifo'))).isFIFO()).toBe(true);
      const block = await fsp.lstat(path.join(restoredRoot, 'block-device'));
      expect(block.isBlockDevice()).toBe(true);
      expect(block.rdev).toBe((await fsp.lstat(p('block-device'))).rdev);
      expect(await fsp.readFile(path.join(restoredRoot, 'regular.txt'), 'utf8')).toBe('hello, world\n');
    });

    it('restores a FIFO and a device whose names are not UTF-8', async () => {
      // The tree format keeps any name; a restore must not lose special files because of their names.
      const srcBuf = Buffer.from(src);
      const fifoName = b('fifo-', NOT_UTF8);
      const devName = b('dev-', NOT_UTF8);
      // mkfifo/mknod take string arguments: create with a plain name, then rename to the raw bytes.
      await run('mkfifo', ['--', path.join(src, 'tmp-fifo')]);
      await fsp.rename(path.join(src, 'tmp-fifo'), b(srcBuf, '/', fifoName));
      await run('mknod', ['--', path.join(src, 'tmp-dev'), 'c', '1', '5']);
      await fsp.rename(path.join(src, 'tmp-dev'), b(srcBuf, '/', devName));
      // A plainly named FIFO inside a directory whose name is not UTF-8.
      await fsp.mkdir(b(srcBuf, '/dir-', NOT_UTF8));
      await run('mkfifo', ['--', path.join(src, 'tmp-fifo')]);
      await fsp.rename(path.join(src, 'tmp-fifo'), b(srcBuf, '/dir-', NOT_UTF8, '/fifo'));
      const source = await scanTree(src);
      expect(source.get(escapeBytes(fifoName))?.type).toBe('fifo');
      expect(source.get(`${escapeBytes(b('dir-', NOT_UTF8))}/fifo`)?.type).toBe('fifo');
      const snapshot = await backup();
      await restore(snapshot);
      const restored = await scanTree(path.join(target, src));
      expect(asObject(restored)).toEqual(asObject(source)); // also: no temporary names left behind
    });
  });
});
