import { execFile } from 'node:child_process';
import { access, cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { tempDir } from '../support/cli.ts';

// What the image does, without a container engine: the packed npm tarball installed with
// production dependencies only in an empty directory, and each entry point started from there.
// npm may fetch what its cache lacks (--prefer-offline).

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// The bin's shebang runs `node` from PATH: make it this Node.
const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false' };

describe('the npm package', () => {
  let scratch: { dir: string; cleanup: () => Promise<void> };
  let arca: string;
  let installed: string;

  beforeAll(async () => {
    scratch = await tempDir('arca-package-');
    const stage = path.join(scratch.dir, 'stage');
    installed = path.join(scratch.dir, 'installed');
    await mkdir(stage);
    await mkdir(installed);
    for (const entry of ['package.json', 'README.md', 'docs', 'manifests']) await cp(path.join(ROOT, entry), path.join(stage, entry), { recursive: true });
    await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json'), '--outDir', path.join(stage, 'dist')], { env });
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', scratch.dir], { cwd: stage, env });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    await writeFile(path.join(installed, 'package.json'), JSON.stringify({ name: 'arca-install-test', version: '1.0.0', private: true }));
    await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', path.join(scratch.dir, filename)], { cwd: installed, env });
    arca = path.join(installed, 'node_modules', '.bin', 'arca');
  }, 600_000);
  afterAll(async () => { await scratch.cleanup(); });

  test('installs with production dependencies only, manifests included, tests and benchmarks left out', async () => {
    const modules = await readdir(path.join(installed, 'node_modules'));
    expect(modules).toContain('@kubernetes');
    expect(modules).not.toContain('vitest');
    expect(modules).not.toContain('typescript');
    const pkg = path.join(installed, 'node_modules', 'arca');
    await access(path.join(pkg, 'manifests', 'kustomization.yaml'));
    expect((await readdir(path.join(pkg, 'dist'))).sort()).toEqual(['agent', 'chunker', 'cli', 'controller', 'engine', 'kube', 'repository', 'repository-access', 'restore-wait']);
  });

  test.each([
    ['agent', 'Usage: arca agent [options]'],
    ['controller', 'Usage: arca controller [options]'],
    ['restore-wait', 'Usage: arca restore-wait [options] <VOLUME_DIR...>'],
  ])('arca %s --help starts from the installed package', async (command, usage) => {
    const { stdout } = await run(arca, [command, '--help'], { env });
    expect(stdout.split('\n')[0]).toBe(usage);
  });

  test('arca restore-wait runs from the installed package', async () => {
    const volume = path.join(scratch.dir, 'volume');
    await mkdir(path.join(volume, '.arca'), { recursive: true });
    await writeFile(path.join(volume, '.arca', 'restore-1'), '');
    const { stdout } = await run(arca, ['restore-wait', '--restore-uid', 'restore-1', volume], { env });
    expect(stdout).toBe('arca restore-wait: 1 volume restored\n');
    expect(await readdir(volume)).toEqual([]);
  });
});
