import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arcaOk, startArca, tempDir } from '../support/cli.ts';
import { pseudoRandom } from '../storage-wrappers/helpers.ts';
import { countFiles, until, writeFiles } from '../engine/helpers.ts';

/** SIGINT (Ctrl-C) and SIGTERM stop a running backup cleanly: exit 130/143, no lease, no snapshot. */
describe('arca backup interrupted', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  let source: string;

  beforeAll(async () => {
    temp = await tempDir('arca-interrupt-');
    source = path.join(temp.dir, 'source');
    await writeFiles(source, 4, 48, 2 << 20, 'interrupt', pseudoRandom);
  });
  afterAll(async () => { await temp.cleanup(); });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`exits ${code} on ${signal}, releases its lease and saves nothing; the next backup works`, async () => {
      const repo = path.join(temp.dir, `repo-${signal}`);
      await arcaOk(['init', '--repo', repo]);
      const child = startArca(['backup', '--repo', repo, '--no-cache', source], { env: { ARCA_WORKERS: '1' } });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const exited = new Promise<number | null>((resolve) => { child.on('close', (c) => { resolve(c); }); });
      // The lease is the first thing a backup writes: signal once it is there and data is flowing.
      await until(async () => await countFiles(path.join(repo, 'leases'), /./) > 0);
      await until(async () => await countFiles(path.join(repo, 'data'), /^[0-9a-f]{64}$/) > 0);
      child.kill(signal);
      expect(await exited).toBe(code);
      expect(stderr).toMatch(/^arca: interrupted; no snapshot was saved/m);
      expect(await fsp.readdir(path.join(repo, 'leases'))).toEqual([]);
      expect(await fsp.readdir(path.join(repo, 'snapshots')).catch(() => [])).toEqual([]);
      const next = await arcaOk(['backup', '--repo', repo, '--no-cache', '--json', source]);
      expect(next.stdout).toMatch(/"message_type":"summary"/);
      await arcaOk(['check', '--repo', repo]);
    });
  }
});
