import { UsageError } from '../../repository/errors.ts';
import { indexName } from '../../repository/object-names.ts';
import type { Command } from '../command.ts';
import { openRepository } from '../context.ts';

function treeJson(bytes: Buffer): unknown {
  return JSON.parse(bytes.toString('utf8')) as unknown;
}

export const catCommand: Command = {
  name: 'cat',
  usage: 'arca cat config | snapshot ID | tree ID | index ID',
  summary: 'print one repository object as JSON',
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
