import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stderrLogger } from '../../cli/stderr-logger.ts';
import { backupVolume, initRepository, openRepository, type Logger } from '../../engine/index.ts';
import { tempDir } from '../support/cli.ts';
import { pseudoRandom, SMALL_REPO } from '../storage-wrappers/helpers.ts';
import { writeFiles } from './helpers.ts';

describe('the logger passed in', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => { temp = await tempDir('arca-logger-'); });
  afterAll(async () => { await temp.cleanup(); });

  it('takes a pino logger as it is, and a backup logs its repository, packs and snapshot as fields', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done): void {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const logger: Logger = pino({ level: 'debug' }, sink).child({ job: 'pvb-1' });
    const url = path.join(temp.dir, 'repo');
    await initRepository({ url, password: 'pw', config: SMALL_REPO, kdf: { fixedN: 1024 } });
    const source = path.join(temp.dir, 'source');
    await writeFiles(source, 2, 8, 100_000, 'log', pseudoRandom);
    const repo = await openRepository({ url, password: 'pw', logger });
    const outcome = await backupVolume(repo, source, { logger, workers: 1 });
    if (outcome.status !== 'completed') throw new Error(outcome.status);
    await new Promise((resolve) => setImmediate(resolve));
    const packs = lines.filter((l) => typeof l.pack === 'string');
    expect(packs.length).toBeGreaterThan(0);
    expect(packs[0]).toMatchObject({ job: 'pvb-1', repository: url, operation: 'backup', msg: 'stored pack' });
    expect(lines).toContainEqual(expect.objectContaining({ repository: url, snapshot: outcome.snapshotId, level: 30 }));
  });

  it('writes warnings on stderr the way the CLI always has, and none with --quiet', () => {
    const written: string[] = [];
    const logger = stderrLogger({ quiet: false }, (line) => { written.push(line); });
    logger.child({ repository: '/r' }).warn({ object: 'index/ab' }, 'Storage /r failed to read index/ab; trying again in 0.2 s');
    logger.info({}, 'not shown without verbose');
    stderrLogger({ quiet: true }, (line) => { written.push(line); }).warn({}, 'not shown with --quiet');
    expect(written).toEqual(['arca: warning: Storage /r failed to read index/ab; trying again in 0.2 s.\n']);
  });
});
