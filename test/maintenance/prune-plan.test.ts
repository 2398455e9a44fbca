import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError } from '../../repository/errors.ts';
import { BlobIndex, encodeIndexFile, IndexFileEncoder, loadIndexFile, type IndexPack } from '../../repository/index/index.ts';
import { completedPlan, countPlans, deletePlan, listPlans, planHeader, readPlan, writePlan } from '../../repository/maintenance/prune-plan.ts';
import { prunePlanName } from '../../repository/object-names.ts';
import { Repository } from '../../repository/repository.ts';
import { LocalStorage } from '../../repository/storage/local.ts';
import { tempDir } from '../support/cli.ts';

function entries(): IndexPack[] {
  const blob = (offset: number, type: 'data' | 'tree'): IndexPack['blobs'][number] => ({ id: randomBytes(32), type, offset, length: 100, rawLength: 90 });
  return [
    { packId: randomBytes(32), blobs: [blob(0, 'data'), blob(100, 'tree')] },
    { packId: randomBytes(32), blobs: [blob(0, 'data')] },
  ];
}

describe('prune plans', () => {
  let repo: Repository;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    repo = await Repository.init(new LocalStorage(temp.dir), Buffer.from('plan-password'));
  });
  afterEach(async () => cleanup());

  it('round-trip: candidate packs, both times, the leases standing at completion, and the entries as an index file', async () => {
    const packs = entries();
    const unindexed = randomBytes(32).toString('hex');
    const content = { created: '2026-11-22T21:00:00.123Z', packs: [...packs.map((p) => p.packId.toString('hex')), unindexed] };
    const encoder = new IndexFileEncoder(packs.length, 3, { prefix: planHeader({ ...content, completed: undefined, leases: undefined }) });
    for (const pack of packs) encoder.addPack(pack.packId, pack.blobs);
    const encoded = encoder.finish();
    const draft = await writePlan(repo, encoded);
    const leases = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
    const done = await writePlan(repo, completedPlan(encoded, '2026-11-22T21:05:00.000Z', leases));

    const readDraft = await readPlan(repo, draft);
    expect(readDraft.completed).toBeUndefined();
    expect(readDraft.created).toBe(content.created);
    expect(readDraft.leases).toBeUndefined();
    const plan = await readPlan(repo, done);
    expect(plan.completed).toBe('2026-11-22T21:05:00.000Z');
    expect(plan.packs).toEqual(content.packs);
    expect(plan.leases).toEqual(leases);
    expect(plan.entries).toEqual(packs);
    const retired = new BlobIndex();
    expect(loadIndexFile(plan.index, retired).added).toBe(3);

    expect(await countPlans(repo)).toBe(2);
    await deletePlan(repo, draft);
    expect((await listPlans(repo)).map((p) => p.id)).toEqual([done]);
  });

  it('reports a plan that does not decode as corrupt', async () => {
    const head = planHeader({ created: new Date().toISOString(), completed: undefined, packs: [randomBytes(32).toString('hex')], leases: undefined });
    const index = encodeIndexFile(entries());
    const damaged = [
      Buffer.concat([head, index.subarray(0, index.length - 1)]), // a truncated index file
      head.subarray(0, head.length - 1), // a truncated list of packs
      Buffer.concat([Buffer.from('{"version":1}'), index]), // not a plan
    ];
    for (const plain of damaged) {
      const id = await repo.writeSealedObject(prunePlanName, 'prune-plan', plain);
      await expect(readPlan(repo, id)).rejects.toBeInstanceOf(CorruptObjectError);
    }
    const good = await writePlan(repo, Buffer.concat([head, index]));
    expect((await readPlan(repo, good)).entries).toHaveLength(2);
  });
});
