#!/usr/bin/env -S node --max-semi-space-size=4
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { ArcaError, UsageError } from '../repository/errors.ts';
import type { Command, OptionValues } from './command.ts';
import type { GlobalOptions } from './context.ts';
import { exitCodeOf } from './exit-codes.ts';
import { backupCommand } from './commands/backup.ts';
import { catCommand } from './commands/cat.ts';
import { checkCommand } from './commands/check.ts';
import { pruneCommand } from './commands/prune.ts';
import { copyCommand } from './commands/copy.ts';
import { repairCommand } from './commands/repair.ts';
import { diffCommand } from './commands/diff.ts';
import { forgetCommand } from './commands/forget.ts';
import { initCommand } from './commands/init.ts';
import { keyCommand } from './commands/key.ts';
import { lsCommand } from './commands/ls.ts';
import { restoreCommand } from './commands/restore.ts';
import { snapshotsCommand } from './commands/snapshots.ts';
import { statsCommand } from './commands/stats.ts';

const COMMANDS: readonly Command[] = [
  initCommand, backupCommand, snapshotsCommand, lsCommand, restoreCommand, diffCommand, statsCommand, checkCommand, pruneCommand, forgetCommand, copyCommand, repairCommand, catCommand, keyCommand,
];

// The in-cluster entry points parse their own flags and load only what they need.
const ENTRY_POINTS: Partial<Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>>> = {
  agent: () => import('../agent/main.ts'),
  controller: () => import('../controller/main.ts'),
  'restore-wait': () => import('../restore-wait/main.ts'),
};

const GLOBAL_OPTIONS: ParseArgsOptionsConfig = {
  repo: { type: 'string', short: 'r' },
  'password-file': { type: 'string' },
  's3-endpoint': { type: 'string' },
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: arca COMMAND [options]   (repository: --repo or ARCA_REPOSITORY; password: ARCA_PASSWORD, ARCA_PASSWORD_FILE or --password-file)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '  agent | controller | restore-wait   the in-cluster entry points (see their --help)',
    '',
    'Global options: --repo URL, --password-file FILE, --s3-endpoint URL, --cache-dir DIR, --no-cache, --json, --quiet, --help',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write('arca 0.1.0\n');
    return 0;
  }
  const entryPoint = ENTRY_POINTS[name];
  if (entryPoint) return (await entryPoint()).run(rest);
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`Unknown command "${name}". Run "arca --help" for the list.`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\nUsage: ${command.usage}`);
  }
  const values = parsed.values as OptionValues;
  if (values.help === true) {
    process.stdout.write(`Usage: ${command.usage}\n${command.summary}\n`);
    return 0;
  }
  const global: GlobalOptions = {
    repo: typeof values.repo === 'string' ? values.repo : undefined,
    passwordFile: typeof values['password-file'] === 'string' ? values['password-file'] : undefined,
    json: values.json === true,
    quiet: values.quiet === true,
    s3Endpoint: typeof values['s3-endpoint'] === 'string' ? values['s3-endpoint'] : undefined,
    cacheDir: typeof values['cache-dir'] === 'string' ? values['cache-dir'] : undefined,
    noCache: values['no-cache'] === true,
  };
  return command.run(values, parsed.positionals, global);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    const message = err instanceof ArcaError ? err.message : err instanceof Error ? `unexpected error: ${err.stack ?? err.message}` : String(err);
    process.stderr.write(`arca: ${message}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
