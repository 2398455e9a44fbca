import { createRepository } from '../context.ts';
import { printJson } from '../output.ts';
import { compressionLevel, type Command } from '../command.ts';

export const initCommand: Command = {
  name: 'init',
  args: '',
  summary: 'create a new repository',
  details: 'The repository is created at --repo (or ARCA_REPOSITORY), which must not hold one already.',
  options: {
    'compression-level': {
      type: 'string', value: 'N', complete: ['0', '1', '3', '9', '19'],
      description: 'zstd level, 0 (store uncompressed) to 19; the repository\'s default, stored in its config (3 unless given; backup --compression-level overrides it)',
    },
  },
  async run(values, _positionals, global) {
    const repo = await createRepository(global, { compressionLevel: compressionLevel(values) });
    if (global.json) printJson({ id: repo.config.id, repository: repo.storage.location });
    else if (!global.quiet) process.stdout.write(`created Arca repository ${repo.config.id.slice(0, 10)} at ${repo.storage.location}\n`);
    return 0;
  },
};
