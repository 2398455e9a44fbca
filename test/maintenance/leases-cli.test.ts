import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../support/cli.ts';
import { Arena } from './interleavings.ts';

interface LeaseRow { readonly id: string; readonly kind: string; readonly state: string; readonly age_seconds: number }

/** `arca leases`: what a killed process left is listed, turns stale, and `remove --stale` revokes it; a live one stays. */
describe('arca leases', () => {
  let arena: Arena;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir('arca-leases-'));
    arena = new Arena(dir);
    await arena.init();
  });
  afterEach(async () => cleanup());

  const list = async (env: Record<string, string> = {}): Promise<LeaseRow[]> => JSON.parse((await arena.ok(['leases', '--json'], env)).stdout) as LeaseRow[];

  it('lists leases, and revokes the stale ones only', async () => {
    const src = await arena.source('src', 1, 1 << 16);
    const killed = arena.start(['backup', src.dir], 'index-loaded');
    await killed.reached;
    killed.kill();
    await killed.done;
    const held = arena.start(['backup', src.dir], 'index-loaded');
    await held.reached;
    expect((await list()).map((l) => [l.kind, l.state])).toEqual([['backup', 'live'], ['backup', 'live']]);

    // With a lifetime of one second, both look stale after two; but only IDs given are revoked.
    await sleep(2000);
    const short = { ARCA_LEASE_TTL_MS: '1000' };
    expect((await list(short)).map((l) => l.state)).toEqual(['stale', 'stale']);
    await expect(arena.run(['leases', 'remove'])).resolves.toMatchObject({ code: 1 });
    const [first] = await list();
    await arena.ok(['leases', 'remove', (first as LeaseRow).id.slice(0, 8)]);
    expect(await list()).toHaveLength(1);
    await arena.ok(['leases', 'remove', '--stale'], short);
    expect(await list()).toEqual([]);

    // The held backup's lease was revoked under it: it writes nothing and says so.
    await held.go();
    const result = await held.done;
    expect(result.code).toBe(11);
    expect(result.stderr).toMatch(/lost its lease/);
    expect(await arena.snapshotIds()).toEqual([]);
  });
});
