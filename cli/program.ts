import { Command as Commander, CommanderError, Option } from 'commander';
import { UsageError } from '../repository/errors.ts';
import type { Command, OptionSpec, OptionSpecs, OptionValues } from './command.ts';
import type { GlobalOptions } from './context.ts';
import { VERSION } from '../engine/version.ts';
import { completionCommand } from './commands/completion.ts';
import { ENTRY_POINTS, REPOSITORY_COMMANDS, type EntryPoint } from './commands/index.ts';
import { GLOBAL_OPTIONS } from './global-options.ts';

/** Every subcommand, in the order `arca --help` lists them. */
export const COMMANDS: readonly Command[] = [...REPOSITORY_COMMANDS, completionCommand];

export interface ProgramOptions {
  /** Wrap help at this width (docs/cli.md uses a fixed one); the terminal's by default. */
  readonly helpWidth?: number;
  /** List the global options in every command's help (on a terminal; docs/cli.md lists them once). */
  readonly showGlobalOptions?: boolean;
}

/** What a parse chose: a command with its values, an entry point with its argv, or nothing more to do (help, version). */
export type Invocation =
  | { readonly kind: 'run'; readonly command: Command; readonly values: OptionValues; readonly positionals: string[]; readonly global: GlobalOptions }
  | { readonly kind: 'entry'; readonly entry: EntryPoint; readonly argv: string[] }
  | { readonly kind: 'done'; readonly exitCode: number };

/** The commander program for `arca`, built from COMMANDS and GLOBAL_OPTIONS. */
export function buildProgram({ helpWidth, showGlobalOptions = true }: ProgramOptions = {}): { program: Commander; invocation: () => Invocation | undefined } {
  let invocation: Invocation | undefined;
  const program = new Commander('arca')
    .description('Deduplicated, compressed, encrypted backups of directories into a repository on a local disk, S3, GCS or Azure Blob.')
    .usage('[global options] COMMAND [options] [arguments]')
    .version(`arca ${VERSION}`, '-V, --version', 'print the version')
    .helpCommand('help [COMMAND]', 'show the help of COMMAND')
    .helpOption('-h, --help', 'show this help')
    .configureHelp({ showGlobalOptions, subcommandTerm: (cmd) => cmd.name(), ...(helpWidth === undefined ? {} : { helpWidth }) })
    .configureOutput({ outputError: () => undefined })
    .exitOverride(usageErrorFor(undefined));
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) program.addOption(optionOf(name, spec));
  for (const command of COMMANDS) {
    const sub = program.command(command.name)
      .summary(command.summary)
      .description(command.details === undefined ? command.summary : `${command.summary}\n\n${command.details}`)
      .usage(`${command.args === '' ? '' : `${command.args} `}[options]`)
      .helpOption('-h, --help', 'show this help')
      .allowExcessArguments(true)
      .exitOverride(usageErrorFor(command.name))
      .action((_args: unknown, cmd: Commander) => {
        const all = cmd.optsWithGlobals();
        invocation = { kind: 'run', command, values: valuesOf(command.options, cmd), positionals: [...cmd.args], global: globalOf(all) };
      });
    for (const [name, spec] of Object.entries(command.options)) sub.addOption(optionOf(name, spec));
  }
  // Listed in the help only: parse() hands them their argv before commander sees it.
  for (const entry of ENTRY_POINTS) program.command(entry.name).summary(entry.summary).description(`${entry.summary}; "arca ${entry.name} --help" lists its options`);
  return { program, invocation: () => invocation };
}

/** Parses argv (without node and the script); throws a UsageError for what cannot be parsed. */
export function parse(argv: readonly string[]): Invocation {
  const [first, second] = argv;
  const entry = ENTRY_POINTS.find((e) => e.name === first) ?? (first === 'help' ? ENTRY_POINTS.find((e) => e.name === second) : undefined);
  if (entry !== undefined) return { kind: 'entry', entry, argv: first === 'help' ? ['--help'] : argv.slice(1) };
  const { program, invocation } = buildProgram({ showGlobalOptions: true });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { kind: 'done', exitCode: err.exitCode };
    throw err;
  }
  return invocation() ?? { kind: 'done', exitCode: 0 };
}

function optionOf(name: string, spec: OptionSpec): Option {
  const flags = `${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${spec.type === 'string' ? ` <${spec.value ?? 'VALUE'}>` : ''}`;
  const option = new Option(flags, spec.description);
  if (spec.hidden === true) option.hideHelp();
  const check = spec.check;
  if (spec.type === 'string') {
    option.argParser((value: string, previous: unknown) => {
      check?.(value, `--${name}`);
      return spec.multiple === true ? [...(Array.isArray(previous) ? previous as string[] : []), value] : value;
    });
  }
  return option;
}

/** The option values of one command, keyed by long option name as run() expects them. */
function valuesOf(specs: OptionSpecs, cmd: Commander): OptionValues {
  const values: OptionValues = {};
  for (const option of cmd.options) {
    const name = option.long?.replace(/^--/, '');
    if (name === undefined || !(name in specs)) continue;
    values[name] = valueOf(option, cmd.getOptionValue(option.attributeName()));
  }
  return values;
}

function valueOf(option: Option, raw: unknown): string | boolean | string[] | undefined {
  // "--no-cache" is stored by commander as cache=false.
  if (option.negate) return raw === false;
  if (typeof raw === 'string' || typeof raw === 'boolean') return raw;
  if (Array.isArray(raw)) return raw.map(String);
  return undefined;
}

function globalOf(all: Record<string, unknown>): GlobalOptions {
  const text = (key: string): string | undefined => (typeof all[key] === 'string' ? all[key] : undefined);
  return {
    repo: text('repo'),
    passwordFile: text('passwordFile'),
    json: all.json === true,
    quiet: all.quiet === true,
    verbose: all.verbose === true,
    s3Endpoint: text('s3Endpoint'),
    cacheDir: text('cacheDir'),
    noCache: all.cache === false,
  };
}

/**
 * Commander's own errors ("error: unknown option '--x'\n(Did you mean --y?)") become one
 * sentence that says where the help is. Help and version exits pass through as they are.
 */
function usageErrorFor(commandName: string | undefined): (err: CommanderError) => never {
  return (err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' || err.code === 'commander.executeSubCommandAsync') throw err;
    const [first = '', ...rest] = err.message.replace(/^error: /, '').split('\n');
    const hint = rest.join(' ').trim().replace(/^\((.*)\)$/, '$1');
    const what = err.code === 'commander.unknownCommand' ? 'commands' : 'options';
    const help = commandName === undefined ? 'arca --help' : `arca ${commandName} --help`;
    const sentence = first.replace(/\.$/, '');
    throw new UsageError(`${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}${hint === '' ? '' : ` (${hint.charAt(0).toLowerCase()}${hint.slice(1).replace(/\?$/, '')}?)`}; run "${help}" for the ${what}.`);
  };
}
