import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir, type RunResult } from '../support/cli.ts';

interface KeyJson {
  readonly id: string;
  readonly created: string;
  readonly hostname: string;
  readonly username: string;
  readonly current: boolean;
}

describe('arca key', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('arca-keys-'));
    repo = path.join(dir, 'repo');
  });
  afterEach(async () => cleanup());

  const as = (password: string, args: readonly string[], extra: Record<string, string> = {}): Promise<RunResult> =>
    runArca([...args, '--repo', repo], { env: { ARCA_PASSWORD: password, ...extra } });
  const ok = async (password: string, args: readonly string[], extra: Record<string, string> = {}): Promise<string> =>
    (await arcaOk([...args, '--repo', repo], { env: { ARCA_PASSWORD: password, ...extra } })).stdout;
  const keys = async (password: string): Promise<KeyJson[]> => JSON.parse(await ok(password, ['key', 'list', '--json'])) as KeyJson[];
  async function expectWrongPassword(password: string): Promise<void> {
    const result = await as(password, ['snapshots']);
    expect(result.code, `password ${password}`).toBe(12);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  }

  it('add, list, passwd and remove: new passwords open the repository, replaced and removed ones do not', async () => {
    await ok('first', ['init']);
    const [initial] = await keys('first');
    expect(initial).toMatchObject({ current: true });
    expect(initial?.id).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(initial?.created ?? '')).not.toBeNaN();

    // add: a second password for the same master key.
    expect(await ok('first', ['key', 'add'], { ARCA_NEW_PASSWORD: 'second' })).toMatch(/^added key [0-9a-f]{8}\n$/);
    const two = await keys('first');
    expect(two).toHaveLength(2);
    expect(two.filter((k) => k.current).map((k) => k.id)).toEqual([initial?.id]);
    const secondKey = two.find((k) => k.id !== initial?.id);
    expect((await keys('second')).filter((k) => k.current).map((k) => k.id)).toEqual([secondKey?.id]);

    // Both passwords open the same data: back up with one, restore with the other.
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'f.txt'), 'opened by two keys\n');
    const snapshot = String(summaryOf(await ok('second', ['backup', src, '--json'])).snapshot_id);
    await ok('first', ['restore', snapshot, '--target', path.join(dir, 'target')]);
    expect(await fsp.readFile(path.join(dir, 'target', src, 'f.txt'), 'utf8')).toBe('opened by two keys\n');

    // passwd: "second" becomes "third"; "first" is untouched.
    expect(await ok('second', ['key', 'passwd'], { ARCA_NEW_PASSWORD: 'third' })).toMatch(/changed password/);
    await expectWrongPassword('second');
    const afterPasswd = await keys('third');
    expect(afterPasswd).toHaveLength(2);
    expect(afterPasswd.map((k) => k.id)).not.toContain(secondKey?.id);
    expect(afterPasswd.map((k) => k.id)).toContain(initial?.id);
    expect(JSON.parse(await ok('first', ['snapshots', '--json'])) as unknown[]).toHaveLength(1);

    // remove: the key opened with "first", removed using "third".
    const ownKey = afterPasswd.find((k) => k.current);
    const refused = await as('third', ['key', 'remove', ownKey?.id.slice(0, 8) ?? '']);
    expect(refused.code).toBe(1); // not the key in use
    expect(refused.stderr).toMatch(/Refusing/);
    expect(await keys('third')).toHaveLength(2);
    expect((await as('third', ['key', 'remove', 'ffffffffffff'])).code).toBe(1); // matches no key
    expect(await ok('third', ['key', 'remove', initial?.id.slice(0, 10) ?? ''])).toMatch(/^removed key /);
    await expectWrongPassword('first');
    const last = await keys('third');
    expect(last.map((k) => k.id)).toEqual([ownKey?.id]);
    expect(JSON.parse(await ok('third', ['snapshots', '--json'])) as unknown[]).toHaveLength(1);
  });

  it('takes passwords from files, and refuses to add a key without a new password', async () => {
    await ok('first', ['init']);
    const newFile = path.join(dir, 'new-password');
    await fsp.writeFile(newFile, 'from a file\nsecond line is ignored\n');
    await ok('first', ['key', 'add', '--new-password-file', newFile]);
    const passwordFile = path.join(dir, 'password');
    await fsp.writeFile(passwordFile, 'from a file\n');
    const viaFile = await runArca(['key', 'list', '--json', '--repo', repo, '--password-file', passwordFile], { env: { ARCA_PASSWORD: undefined } });
    expect(viaFile.code, viaFile.stderr).toBe(0);
    expect((JSON.parse(viaFile.stdout) as KeyJson[]).filter((k) => k.current)).toHaveLength(1);
    const missing = await as('first', ['key', 'add'], { ARCA_NEW_PASSWORD: '' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ARCA_NEW_PASSWORD/); // says how to give one
    expect(await keys('first')).toHaveLength(2);
  });
});
