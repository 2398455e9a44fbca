import { blake3 } from '@napi-rs/blake-hash';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, runArca, tempDir, type RunResult } from '../support/cli.ts';
import { cliEnv, stderrProblems, treeDifferences } from './helpers.ts';

/** Wrong passwords, missing repositories and damaged key files: exit codes and one-line errors. */

function oneLine(r: RunResult): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(stderrProblems(r.stderr)).toEqual([]);
  return lines[0] ?? '';
}

/**
 * The one error line of a failed run. A damaged object may first draw "arca: warning:" lines
 * (the storage layer reads a content-named object that does not match its name again before
 * giving up); those are not the error.
 */
function errorLine(r: RunResult): string {
  expect(stderrProblems(r.stderr)).toEqual([]);
  const errors = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('arca: warning: '));
  expect(errors, r.stderr).toHaveLength(1);
  return errors[0] ?? '';
}

describe('repository access errors', () => {
  let base: string;
  let cleanup: () => Promise<void>;
  let src: string;
  let repo: string;
  const cacheHome = (): string => path.join(base, 'cache');

  /** Every reading or writing command, run against `repoPath`. */
  function commands(repoPath: string): string[][] {
    return [
      ['snapshots', '--repo', repoPath],
      ['ls', '--repo', repoPath, 'latest'],
      ['restore', 'latest', '--repo', repoPath, '--target', path.join(base, 'never-restored')],
      ['backup', '--repo', repoPath, src],
      ['cat', 'config', '--repo', repoPath],
    ];
  }

  async function keyFiles(repoPath: string): Promise<string[]> {
    return (await fsp.readdir(path.join(repoPath, 'keys'))).map((k) => path.join(repoPath, 'keys', k));
  }

  /** A copy of the repository to damage. */
  async function copyRepo(name: string): Promise<string> {
    const copy = path.join(base, name);
    await fsp.cp(repo, copy, { recursive: true });
    return copy;
  }

  beforeAll(async () => {
    ({ dir: base, cleanup } = await tempDir('arca-access-'));
    src = path.join(base, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'a.txt'), 'some data\n');
    repo = path.join(base, 'repo');
    await arcaOk(['init', '--repo', repo], { env: cliEnv(cacheHome()) });
    await arcaOk(['backup', '--repo', repo, src], { env: cliEnv(cacheHome()) });
  });
  afterAll(async () => cleanup());

  it('a wrong password exits 12 with one line, from ARCA_PASSWORD or a password file, for every command', async () => {
    const passwordFile = path.join(base, 'wrong-password');
    await fsp.writeFile(passwordFile, 'not-the-password\n');
    const before = await fsp.readdir(path.join(repo, 'snapshots'));
    for (const args of commands(repo)) {
      for (const env of [{ ARCA_PASSWORD: 'not-the-password' }, { ARCA_PASSWORD: undefined, ARCA_PASSWORD_FILE: passwordFile }]) {
        const r = await runArca(args, { env: { ...cliEnv(cacheHome()), ...env } });
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(12);
        expect(oneLine(r)).toMatch(/password/i);
        expect(r.stdout).toBe('');
      }
    }
    expect(await fsp.readdir(path.join(repo, 'snapshots'))).toEqual(before);
    await expect(fsp.stat(path.join(base, 'never-restored'))).rejects.toThrow(/ENOENT/);
  });

  it('a missing repository exits 10 with one line and is not created', async () => {
    const missing = path.join(base, 'no-such-repo');
    const empty = path.join(base, 'empty-dir');
    await fsp.mkdir(empty);
    for (const where of [missing, empty]) {
      for (const args of commands(where)) {
        const r = await runArca(args, { env: cliEnv(cacheHome()) });
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(10);
        expect(oneLine(r)).toContain(where);
      }
    }
    await expect(fsp.stat(missing)).rejects.toThrow(/ENOENT/);
    expect(await fsp.readdir(empty)).toEqual([]);
  });

  it('a key file with a damaged byte is reported as damaged, not as a wrong password', async () => {
    const copy = await copyRepo('damaged-salt');
    const [key] = await keyFiles(copy);
    if (key === undefined) throw new Error('no key file');
    const text = await fsp.readFile(key, 'utf8');
    // Change one character of the salt: still valid JSON and base64, but a different derived key.
    const salt = /"salt": "([^"]+)"/.exec(text)?.[1] ?? '';
    expect(salt.length).toBeGreaterThan(8);
    const changed = salt.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    await fsp.writeFile(key, text.replace(salt, changed));
    for (const args of commands(copy)) {
      const r = await runArca(args, { env: cliEnv(cacheHome()) });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      const line = errorLine(r);
      expect(line).toContain(`keys/${path.basename(key)}`);
      expect(line).toMatch(/corrupt/);
    }
  });

  it('key files that are not JSON, or hold unusable KDF parameters, give a clear error naming them', async () => {
    const variants: Array<[string, (text: string) => string]> = [
      ['garbage', () => 'this is not a key file'],
      ['truncated', (text) => text.slice(0, 50)],
      ['bad-kdf-n', (text) => text.replace(/"N": \d+/, '"N": 1000')],
      ['missing-salt', (text) => text.replace(/"salt": "[^"]+",?/, '')],
    ];
    for (const [label, damage] of variants) {
      const copy = await copyRepo(`key-${label}`);
      const [key] = await keyFiles(copy);
      if (key === undefined) throw new Error('no key file');
      const bytes = Buffer.from(damage(await fsp.readFile(key, 'utf8')));
      // Stored under the hash of the new bytes, as a key file would be: only its content is wrong.
      const renamed = path.join(copy, 'keys', blake3(bytes).toString('hex'));
      await fsp.rm(key);
      await fsp.writeFile(renamed, bytes);
      const r = await runArca(['snapshots', '--repo', copy], { env: cliEnv(cacheHome()) });
      expect(r.code, `${label}: ${r.stderr}`).toBe(1);
      expect(errorLine(r), label).toContain(`keys/${path.basename(renamed)}`);
    }
  });

  it('no key file at all: a clear error, not a wrong password', async () => {
    const copy = await copyRepo('no-keys');
    for (const key of await keyFiles(copy)) await fsp.rm(key);
    const r = await runArca(['snapshots', '--repo', copy], { env: cliEnv(cacheHome()) });
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(/no key files/);
  });

  it('a damaged key file does not lock out the password of another key', async () => {
    const copy = await copyRepo('two-keys');
    const [first] = await keyFiles(copy);
    if (first === undefined) throw new Error('no key file');
    await arcaOk(['key', 'add', '--repo', copy], { env: { ...cliEnv(cacheHome()), ARCA_NEW_PASSWORD: 'second-password' } });
    const second = (await keyFiles(copy)).find((k) => k !== first);
    if (second === undefined) throw new Error('key add wrote no key file');
    // Damage each key in turn; the other one's password must still open the repository.
    for (const [damaged, password] of [[first, 'second-password'], [second, 'test-password']] as const) {
      const trial = path.join(base, `two-keys-${path.basename(damaged).slice(0, 8)}`);
      await fsp.cp(copy, trial, { recursive: true });
      const victim = path.join(trial, 'keys', path.basename(damaged));
      const bytes = await fsp.readFile(victim);
      bytes[0] = (bytes[0] ?? 0) ^ 0x01; // no longer JSON
      await fsp.writeFile(victim, bytes);
      const target = path.join(trial, 'target');
      await arcaOk(['restore', 'latest', '--repo', trial, '--target', target, '--verify'], { env: { ...cliEnv(cacheHome()), ARCA_PASSWORD: password } });
      expect(await treeDifferences(src, path.join(target, src))).toEqual([]);
    }
  });
});
