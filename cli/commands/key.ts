import { UsageError } from '../../repository/errors.ts';
import { listKeys, writeKeyFile } from '../../repository/key-file.ts';
import { keyName } from '../../repository/object-names.ts';
import { str, type Command } from '../command.ts';
import { kdfSettings, openRepository, readNewPassword } from '../context.ts';
import { printJson } from '../output.ts';

export const keyCommand: Command = {
  name: 'key',
  args: 'list | add | remove ID | passwd',
  summary: 'manage the passwords that open the repository',
  details: 'add and passwd take the new password from --new-password-file, ARCA_NEW_PASSWORD_FILE or ARCA_NEW_PASSWORD; passwd replaces the key this command was opened with.',
  actions: ['list', 'add', 'remove', 'passwd'],
  options: {
    'new-password-file': { type: 'string', value: 'FILE', complete: 'file', description: 'add, passwd: read the new password from the first line of FILE' },
  },
  async run(values, positionals, global) {
    const [action, id] = positionals;
    const repo = await openRepository(global, { withIndex: false });
    switch (action) {
      case 'list': {
        const keys = await listKeys(repo.storage);
        if (global.json) printJson(keys.map((k) => ({ ...k, current: k.id === repo.keyId })));
        else for (const k of keys) process.stdout.write(`${k.id === repo.keyId ? '*' : ' '}${k.id.slice(0, 8)}  ${k.username}@${k.hostname}  ${k.created}\n`);
        return 0;
      }
      case 'add': {
        const key = await writeKeyFile(repo.storage, repo.keys, readNewPassword(str(values, 'new-password-file')), kdfSettings());
        if (global.json) printJson({ added: key.id });
        else process.stdout.write(`added key ${key.id.slice(0, 8)}\n`);
        return 0;
      }
      case 'passwd': {
        const key = await writeKeyFile(repo.storage, repo.keys, readNewPassword(str(values, 'new-password-file')), kdfSettings());
        await repo.storage.delete(keyName(repo.keyId));
        if (global.json) printJson({ added: key.id, removed: repo.keyId });
        else process.stdout.write(`changed password: key ${key.id.slice(0, 8)} replaces ${repo.keyId.slice(0, 8)}\n`);
        return 0;
      }
      case 'remove': {
        if (id === undefined) throw new UsageError('Usage: arca key remove ID');
        const matches = (await listKeys(repo.storage)).filter((k) => k.id.startsWith(id));
        const match = matches[0];
        if (matches.length !== 1 || !match) throw new UsageError(`Key "${id}" matches ${matches.length} keys; give a unique ID prefix.`);
        if (match.id === repo.keyId) throw new UsageError('Refusing to remove the key this command was opened with; use another password to remove it.');
        await repo.storage.delete(keyName(match.id));
        if (global.json) printJson({ removed: match.id });
        else process.stdout.write(`removed key ${match.id.slice(0, 8)}\n`);
        return 0;
      }
      default:
        throw new UsageError('Say what to do: arca key list, add, remove ID, or passwd.');
    }
  },
};
