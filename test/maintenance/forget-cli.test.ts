import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { arcaOk, runArca, summaryOf, tempDir } from '../support/cli.ts';

interface SnapshotJson {
  readonly id: string;
  readonly short_id: string;
  readonly time: string;
  readonly hostname: string;
  readonly tags: string[];
}

interface ForgetGroupJson {
  readonly host: string | null;
  readonly paths: string[] | null;
  readonly tags: string[] | null;
  readonly tag_values?: Record<string, string[]>;
  readonly keep: SnapshotJson[];
  readonly remove: SnapshotJson[];
  readonly reasons: { snapshot: SnapshotJson; matches: string[] }[];
}

describe('arca forget', () => {
  let dir: string;
  let repo: string;
  let src: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'a.txt'), 'hello\n');
    await arcaOk(['init', '--repo', repo]);
  });
  afterEach(async () => cleanup());

  /** Backs up `src` as of `time` and returns the snapshot ID. */
  async function backup(time: string, ...extra: string[]): Promise<string> {
    const { stdout } = await arcaOk(['backup', '--repo', repo, '--json', '--time', time, ...extra, src]);
    return String(summaryOf(stdout).snapshot_id);
  }

  async function snapshots(): Promise<SnapshotJson[]> {
    return JSON.parse((await arcaOk(['snapshots', '--repo', repo, '--json'])).stdout) as SnapshotJson[];
  }

  async function forgetJson(...args: string[]): Promise<ForgetGroupJson[]> {
    const { stdout } = await arcaOk(['forget', '--repo', repo, '--json', ...args]);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    return JSON.parse(stdout) as ForgetGroupJson[];
  }

  it('applies --keep-last, with --dry-run changing nothing', async () => {
    const ids = [];
    for (const day of ['01', '02', '03', '04']) ids.push(await backup(`2024-01-${day}T12:00:00Z`, '--tag', `day${day}`));
    expect((await snapshots()).map((s) => s.time)).toEqual(['01', '02', '03', '04'].map((d) => `2024-01-${d}T12:00:00.000Z`));

    const dry = await arcaOk(['forget', '--repo', repo, '--keep-last', '2', '--dry-run']);
    expect(dry.stdout).toMatch(/keep 2 snapshots/);
    expect(dry.stdout).toMatch(/remove 2 snapshots/);
    expect(dry.stdout).toMatch(/last snapshot/);
    expect(dry.stdout).toMatch(/would remove 2 snapshots \(dry run/);
    expect(await snapshots()).toHaveLength(4);

    const real = await arcaOk(['forget', '--repo', repo, '--keep-last', '2']);
    expect(real.stdout).toMatch(/removed 2 snapshots/);
    expect((await snapshots()).map((s) => s.id).sort()).toEqual([ids[2], ids[3]].sort());
    expect(await readdir(path.join(repo, 'snapshots'))).toHaveLength(2);
    // The data stays (prune is separate) and the repository is still consistent.
    await arcaOk(['check', '--repo', repo]);
  });

  it('prints one JSON document of groups with keep, remove and reasons', async () => {
    const old = await backup('2023-06-01T00:00:00Z');
    const mid = await backup('2024-01-01T00:00:00Z', '--tag', 'pinned');
    const newest = await backup('2024-01-02T00:00:00Z');
    const groups = await forgetJson('--keep-last', '1', '--keep-tag', 'pinned', '--dry-run');
    expect(groups).toHaveLength(1);
    const [group] = groups;
    expect(group).toMatchObject({ host: expect.any(String) as string, paths: [src], tags: null });
    expect(group?.tag_values).toBeUndefined();
    expect(group?.keep.map((s) => s.id)).toEqual([newest, mid]);
    expect(group?.remove.map((s) => s.id)).toEqual([old]);
    expect(group?.keep[0]).toMatchObject({ id: newest, short_id: newest.slice(0, 8), time: '2024-01-02T00:00:00.000Z' });
    expect(group?.reasons.map((r) => [r.snapshot.id, r.matches])).toEqual([[newest, ['last snapshot']], [mid, ['has tag pinned']]]);
    expect(await snapshots()).toHaveLength(3);
  });

  it('removes exactly the snapshots named by ID or prefix', async () => {
    const a = await backup('2024-01-01T00:00:00Z');
    const b = await backup('2024-01-02T00:00:00Z');
    const c = await backup('2024-01-03T00:00:00Z');
    const dry = await forgetJson(a.slice(0, 8), '--dry-run');
    expect(dry).toEqual([{ host: null, paths: null, tags: null, keep: [], remove: [expect.objectContaining({ id: a }) as SnapshotJson], reasons: [] }]);
    expect(await snapshots()).toHaveLength(3);
    const out = await arcaOk(['forget', '--repo', repo, a.slice(0, 8), c]);
    expect(out.stdout).toMatch(/removed 2 snapshots/);
    expect((await snapshots()).map((s) => s.id)).toEqual([b]);
    const missing = await runArca(['forget', '--repo', repo, a]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no snapshot matches/);
  });

  it('groups by host and by the values of key=value tags', async () => {
    const pvc = (time: string, ns: string, pod: string): Promise<string> =>
      backup(time, '--host', 'node-1', '--tag', `namespace=${ns}`, '--tag', `pod=${pod}`, '--tag', 'volume=data');
    await pvc('2024-01-01T00:00:00Z', 'wp', 'db-0');
    const wpDb = await pvc('2024-01-02T00:00:00Z', 'wp', 'db-0');
    const wpWeb = await pvc('2024-01-01T06:00:00Z', 'wp', 'web-0');
    await pvc('2024-01-01T00:00:00Z', 'shop', 'db-0');
    const shopDb = await pvc('2024-01-03T00:00:00Z', 'shop', 'db-0');
    const other = await backup('2024-01-01T00:00:00Z', '--host', 'node-2', '--tag', 'namespace=wp', '--tag', 'pod=db-0');

    const groups = await forgetJson('--keep-last', '1', '--group-by', 'host,tag:namespace,tag:pod');
    expect(groups.map((g) => [g.host, g.tag_values, g.keep.map((s) => s.id), g.remove.length])).toEqual([
      ['node-1', { namespace: ['shop'], pod: ['db-0'] }, [shopDb], 1],
      ['node-1', { namespace: ['wp'], pod: ['db-0'] }, [wpDb], 1],
      ['node-1', { namespace: ['wp'], pod: ['web-0'] }, [wpWeb], 0],
      ['node-2', { namespace: ['wp'], pod: ['db-0'] }, [other], 0],
    ]);
    expect(groups[0]).toMatchObject({ paths: null, tags: null });
    expect((await snapshots()).map((s) => s.id).sort()).toEqual([shopDb, wpDb, wpWeb, other].sort());
  });

  it('keeps daily snapshots and filters by host', async () => {
    for (const t of ['2024-01-01T08:00:00Z', '2024-01-01T20:00:00Z', '2024-01-02T08:00:00Z', '2024-01-02T20:00:00Z']) await backup(t, '--host', 'a');
    const bOnly = await backup('2024-01-01T08:00:00Z', '--host', 'b');
    const out = await arcaOk(['forget', '--repo', repo, '--host', 'a', '--keep-daily', '1']);
    expect(out.stdout).toMatch(/daily snapshot/);
    expect(out.stdout).toMatch(/removed 3 snapshots/);
    expect((await snapshots()).map((s) => [s.hostname, s.time])).toEqual([
      ['b', '2024-01-01T08:00:00.000Z'], ['a', '2024-01-02T20:00:00.000Z'],
    ]);
    expect((await snapshots()).some((s) => s.id === bOnly)).toBe(true);
  });

  it('refuses an empty policy, a policy with IDs, and bad values (and backup a bad --time), changing nothing', async () => {
    const id = await backup('2024-01-01T00:00:00Z');
    for (const args of [[], ['--keep-last', '0'], [id, '--keep-last', '1'], ['--keep-daily', 'x'], ['--keep-within', '7w'], ['--group-by', 'color'], ['--keep-last=-2']]) {
      const r = await runArca(['forget', '--repo', repo, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^arca: .+/);
    }
    const empty = await runArca(['forget', '--repo', repo]);
    expect(empty.stderr.trim().split('\n')).toHaveLength(1);
    expect(empty.stderr).toMatch(/--keep-/);
    expect(await snapshots()).toHaveLength(1);
    const unlimited = await arcaOk(['forget', '--repo', repo, '--keep-last', 'unlimited', '--keep-within', '1y2m3d4h']);
    expect(unlimited.stdout).toMatch(/no snapshots to remove/);
    expect(unlimited.stdout).toMatch(/within 1y2m3d4h/);
    const badTime = await runArca(['backup', '--repo', repo, '--time', 'yesterday', src]);
    expect(badTime.code).toBe(1);
    expect(badTime.stderr).toMatch(/--time/);
  });
});
