import { UsageError } from '../../repository/errors.ts';
import type { Command } from '../command.ts';
import { bashCompletion, zshCompletion } from '../completion.ts';
import { GLOBAL_OPTIONS } from '../global-options.ts';
import { ENTRY_POINTS, REPOSITORY_COMMANDS } from './index.ts';

const SHELLS = { bash: bashCompletion, zsh: zshCompletion } as const;

export const completionCommand: Command = {
  name: 'completion',
  args: 'bash|zsh',
  summary: 'print a shell completion script for bash or zsh',
  details: [
    'bash: add "source <(arca completion bash)" to ~/.bashrc.',
    'zsh: add "source <(arca completion zsh)" to ~/.zshrc after compinit, or save the output as _arca in a directory of $fpath.',
  ].join('\n'),
  actions: Object.keys(SHELLS),
  options: {},
  run(_values, positionals) {
    const [shell] = positionals;
    if (shell !== 'bash' && shell !== 'zsh') throw new UsageError('Name the shell: arca completion bash, or arca completion zsh.');
    process.stdout.write(SHELLS[shell]([...REPOSITORY_COMMANDS, completionCommand], ENTRY_POINTS, GLOBAL_OPTIONS));
    return Promise.resolve(0);
  },
};
