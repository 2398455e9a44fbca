import type { Command, OptionSpec, OptionSpecs } from './command.ts';
import type { EntryPoint } from './commands/index.ts';

/** Shell completion scripts, written from the same definitions as the parser and the help. */

type Entry = readonly [name: string, spec: OptionSpec];

const visible = (specs: OptionSpecs): Entry[] => Object.entries(specs).filter(([, spec]) => spec.hidden !== true);

function flagsOf([name, spec]: Entry): string[] {
  return [`--${name}`, ...(spec.short === undefined ? [] : [`-${spec.short}`])];
}

/** A bash `case` arm that completes the value of each option taking one. */
function bashValueArms(entries: readonly Entry[], indent: string): string[] {
  return entries.filter(([, spec]) => spec.type === 'string').map((entry) => {
    const { complete } = entry[1];
    const action = complete === 'file' ? 'COMPREPLY=($(compgen -f -- "$cur"))'
      : complete === 'dir' ? 'COMPREPLY=($(compgen -d -- "$cur"))'
        : complete === undefined ? 'COMPREPLY=()'
          : `COMPREPLY=($(compgen -W "${complete.join(' ')}" -- "$cur"))`;
    return `${indent}${flagsOf(entry).join('|')}) ${action}; return ;;`;
  });
}

export function bashCompletion(commands: readonly Command[], entryPoints: readonly EntryPoint[], globals: OptionSpecs): string {
  const globalEntries = visible(globals);
  const valueFlags = globalEntries.filter(([, s]) => s.type === 'string').flatMap(flagsOf);
  const globalFlags = [...globalEntries.flatMap(flagsOf), '--help'];
  const arms = commands.map((c) => {
    const entries = visible(c.options);
    return [
      `    ${c.name})`,
      '      case "$prev" in',
      ...bashValueArms(entries, '        '),
      '      esac',
      `      opts="${[...entries.flatMap(flagsOf), ...globalFlags].join(' ')}"`,
      `      actions="${(c.actions ?? []).join(' ')}" ;;`,
    ].join('\n');
  });
  return `# bash completion for arca; load it with: source <(arca completion bash)
_arca() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmd="" args=0 i word opts actions
  # The command is the first word that is neither an option nor an option's value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      ${valueFlags.join('|')}) ((i++)) ;;
      -*) ;;
      *) if [[ -z "$cmd" ]]; then cmd="$word"; else ((args++)); fi ;;
    esac
  done
  case "$prev" in
${bashValueArms(globalEntries, '    ').join('\n')}
  esac
  case "$cmd" in
    "")
      COMPREPLY=($(compgen -W "${[...commands.map((c) => c.name), ...entryPoints.map((e) => e.name), 'help', ...globalFlags, '--version'].join(' ')}" -- "$cur"))
      return ;;
${arms.join('\n')}
    *) return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n "$actions" && $args -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$actions" -- "$cur"))
  fi
}
complete -o default -F _arca arca
`;
}

/** Quotes a word for zsh in single quotes. */
function zq(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** One `_arguments` spec: --name[description]:VALUE:action, repeatable with a leading "*". */
function zshSpec([name, spec]: Entry): string {
  const description = spec.description.replace(/[[\]]/g, '\\$&');
  const value = spec.type === 'boolean' ? ''
    : `:${spec.value ?? 'VALUE'}:${spec.complete === 'file' ? '_files' : spec.complete === 'dir' ? '_files -/' : spec.complete === undefined ? ' ' : `(${spec.complete.join(' ')})`}`;
  const repeat = spec.multiple === true ? '*' : '';
  const forms = flagsOf([name, spec]);
  const exclusive = forms.length > 1 && repeat === '' ? `(${forms.join(' ')})` : '';
  return forms.map((form) => zq(`${exclusive}${repeat}${form}[${description}]${value}`)).join(' ');
}

export function zshCompletion(commands: readonly Command[], entryPoints: readonly EntryPoint[], globals: OptionSpecs): string {
  const globalSpecs = visible(globals).map(zshSpec).join(' \\\n    ');
  const arms = commands.map((c) => {
    const specs = visible(c.options).map(zshSpec);
    const first = c.actions === undefined ? "'*:argument:_files'" : zq(`1:action:(${c.actions.join(' ')})`) + " '*:argument:_files'";
    return `      ${c.name}) _arguments $globals ${[...specs, first].join(' ')} ;;`;
  });
  return `#compdef arca
# zsh completion for arca; load it with: source <(arca completion zsh)
# (after compinit), or save it as _arca in a directory of $fpath.
_arca() {
  local curcontext="$curcontext" state line
  local -a globals commands
  globals=(
    ${globalSpecs}
  )
  commands=(
${[...commands, ...entryPoints].map((c) => `    ${zq(`${c.name}:${c.summary}`)}`).join('\n')}
  )
  _arguments -C $globals '1:command:->command' '*::argument:->argument'
  case $state in
    command) _describe -t commands 'arca command' commands ;;
    argument)
      case $line[1] in
${arms.join('\n')}
      esac ;;
  esac
}
if [[ "\${funcstack[1]}" == _arca ]]; then _arca "$@"; else compdef _arca arca; fi
`;
}
