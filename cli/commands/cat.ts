import { UsageError } from '../../repository/errors.ts';
import { indexName } from '../../repository/object-names.ts';
import type { Command } from '../command.ts';
import { openRepository } from '../context.ts';

function treeJson(bytes: Buffer): unknown {
  return JSON.parse(bytes.toString('utf8')) as unknown;
}

export const catCommand: Command = {
  name: 'cat',
  args: 'config | snapshot SNAPSHOT | tree ID | index ID',
  summary: 'print one repository object as JSON',
  details: 'The object as the format stores it (docs/format.md), decrypted. A tree ID is the full 64-digit hex ID, as a snapshot\'s "tree" or a directory\'s "subtree" gives it.',
  actions: ['config', 'snapshot', 'tree', 'index'],
  options: {},
  async run(_values, positionals, global) {
    const [kind, ref] = positionals;
    const needsRef = kind === 'snapshot' || kind === 'tree' || kind === 'index';
    if (kind === undefined || (needsRef && ref === undefined)) throw new UsageError('Usage: arca cat config | snapshot ID | tree ID | index ID');
    const repo = await openRepository(global, { withIndex: kind === 'tree' });
    let doc: unknown;
    switch (kind) {
      case 'config':
        doc = repo.config;
        break;
      case 'snapshot': {
        const s = await repo.resolveSnapshot(ref ?? '');
        doc = { id: s.id, ...s.snapshot };
        break;
      }
      case 'tree':
        if (!/^[0-9a-f]{64}$/.test(ref ?? '')) throw new UsageError(`cat tree takes a full 64-digit hex tree ID, not "${ref ?? ''}"; "arca cat snapshot SNAPSHOT" shows a snapshot's root tree.`);
        doc = treeJson(await repo.readBlob(Buffer.from(ref ?? '', 'hex')));
        break;
      case 'index': {
        const packs = await repo.readIndexFile(indexName(ref ?? ''));
        doc = { packs: packs.map((p) => ({ id: p.packId.toString('hex'), blobs: p.blobs.map((b) => ({ id: b.id.toString('hex'), type: b.type, offset: b.offset, length: b.length, raw_length: b.rawLength })) })) };
        break;
      }
      default:
        throw new UsageError(`Unknown object kind "${kind}": use config, snapshot, tree or index.`);
    }
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return 0;
  },
};
