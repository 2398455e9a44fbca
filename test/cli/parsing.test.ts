import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../cli/program.ts';
import { GLOBAL_OPTIONS } from '../../cli/global-options.ts';
import { arcaOk, runArca, tempDir } from '../support/cli.ts';

const run = promisify(execFile);

describe('command-line parsing, help, version and completion', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('arca-parsing-'));
    repo = path.join(dir, 'repo');
    await arcaOk(['init', '--repo', repo]);
  });
  afterAll(async () => cleanup());

  it('takes global options before or after the command, in short or long form', async () => {
    for (const args of [['-r', repo, 'snapshots', '--json'], ['--json', '--repo', repo, 'snapshots'], ['snapshots', '-r', repo, '--json'], ['--json', 'snapshots', `--repo=${repo}`]]) {
      const { stdout } = await arcaOk(args);
      expect(JSON.parse(stdout), args.join(' ')).toEqual([]);
    }
    // -q before the command silences init's sentence as it does after it.
    const quiet = await arcaOk(['-q', 'init', '--repo', path.join(dir, 'quiet-repo')]);
    expect(quiet.stdout).toBe('');
  });

  it('describes every option in --help, for the program and each command', async () => {
    const top = await arcaOk(['--help']);
    for (const command of COMMANDS) expect(top.stdout, command.name).toMatch(new RegExp(`^  ${command.name} +${command.summary.slice(0, 20).replace(/[()+]/g, '\\$&')}`, 'm'));
    for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) {
      expect(top.stdout, name).toContain(`--${name}`);
      expect(top.stdout, name).toContain(spec.description.slice(0, 30));
    }
    for (const command of COMMANDS) {
      const help = await arcaOk([command.name, '--help']);
      expect(help.stdout, command.name).toContain(`Usage: arca ${command.name} `);
      for (const [name, spec] of Object.entries(command.options)) {
        if (spec.hidden === true) expect(help.stdout).not.toContain(`--${name}`);
        else expect(help.stdout, `${command.name} --${name}`).toMatch(new RegExp(`--${name}\\b.* ${spec.description.split(' ').slice(0, 3).join(' ').replace(/[()+*.]/g, '\\$&')}`));
      }
      // The global options are listed in each command's help too.
      expect(help.stdout).toContain('--password-file <FILE>');
    }
    expect((await arcaOk(['help', 'restore'])).stdout).toContain('Usage: arca restore SNAPSHOT --target DIR');
  });

  it('answers an unknown option or command with one sentence that says where the help is', async () => {
    const option = await runArca(['snapshots', '--repo', repo, '--tga', 'x']);
    expect(option.code).toBe(1);
    expect(option.stderr).toBe('arca: Unknown option \'--tga\' (did you mean --tag?); run "arca snapshots --help" for the options.\n');
    const command = await runArca(['snapshot', '--repo', repo]);
    expect(command.code).toBe(1);
    expect(command.stderr).toBe('arca: Unknown command \'snapshot\' (did you mean snapshots?); run "arca --help" for the commands.\n');
    const missing = await runArca(['restore', 'latest', '--repo', repo, '--target']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/^arca: Option '--target <DIR>' argument missing; run "arca restore --help"/);
  });

  it('prints the version of package.json', async () => {
    const pkg = JSON.parse(await fsp.readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect((await arcaOk(['--version'])).stdout).toBe(`arca ${pkg.version}\n`);
    expect((await arcaOk(['-V'])).stdout).toBe(`arca ${pkg.version}\n`);
  });

  it('bash completion completes commands, options, option values and actions', async () => {
    const script = path.join(dir, 'arca.bash');
    await fsp.writeFile(script, (await arcaOk(['completion', 'bash'])).stdout);
    const complete = async (...words: string[]): Promise<string[]> => {
      const line = ['arca', ...words].map((w) => `'${w}'`).join(' ');
      const { stdout } = await run('bash', ['-c', `source '${script}'; COMP_WORDS=(${line}); COMP_CWORD=${words.length}; _arca; printf '%s\\n' "\${COMPREPLY[@]}"`]);
      return stdout.split('\n').filter(Boolean).sort();
    };
    expect(await complete('res')).toEqual(['restore', 'restore-wait']);
    expect(await complete('ag')).toEqual(['agent']);
    expect(await complete('-r', '/x', 're')).toEqual(['repair', 'restore', 'restore-wait']);
    expect(await complete('restore', 'latest', '--ver')).toEqual(['--verbose', '--verify']);
    expect(await complete('stats', '--mode', '')).toEqual(['raw-data', 'restore-size']);
    expect(await complete('repair', '')).toEqual(['index', 'snapshots']);
    expect(await complete('--repo', repo, 'key', '')).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(await complete('completion', '')).toEqual(['bash', 'zsh']);
  });

  it('zsh completion is a script zsh can parse', async () => {
    const zsh = await run('sh', ['-c', 'command -v zsh']).then(({ stdout }) => stdout.trim(), () => '');
    const { stdout } = await arcaOk(['completion', 'zsh']);
    expect(stdout).toMatch(/^#compdef arca\n/);
    for (const command of COMMANDS) expect(stdout).toContain(`      ${command.name}) _arguments $globals`);
    expect(stdout).toContain("'agent:the node agent");
    if (zsh === '') return; // zsh is not on every machine; the bash completion above always runs.
    const file = path.join(dir, '_arca');
    await fsp.writeFile(file, stdout);
    await run(zsh, ['-n', file]);
  });

  it('refuses "arca completion" without a shell it knows', async () => {
    const result = await runArca(['completion', 'fish']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('arca: Name the shell: arca completion bash, or arca completion zsh.\n');
  });
});
