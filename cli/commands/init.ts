import { Repository } from '../../repository/repository.ts';
import { readPassword, storageFor } from '../context.ts';
import { printJson } from '../output.ts';
import { compressionLevel, type Command } from '../command.ts';

export const initCommand: Command = {
  name: 'init',
  usage: 'arca init [--repo URL] [--compression-level N]',
  summary: 'create a new repository',
  options: {
    /** zstd level of the repository's writers, 0 (none) to 19; 3 unless given. A backup may override it. */
    'compression-level': { type: 'string' },
  },
  async run(values, _positionals, global) {
    const repo = await Repository.init(await storageFor(global), readPassword(global), { compressionLevel: compressionLevel(values) });
    if (global.json) printJson({ message_type: 'initialized', id: repo.config.id, repository: repo.storage.location });
    else if (!global.quiet) process.stdout.write(`created Arca repository ${repo.config.id.slice(0, 10)} at ${repo.storage.location}\n`);
    return 0;
  },
};
