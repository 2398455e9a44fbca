import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectOutput, runArca, startArca, tempDir } from '../support/cli.ts';
import { floorMicros } from '../support/fs-tree.ts';

// `arca restore-wait` as the init container runs it: a real process, markers written beside it.
const UID = 'c0ffee00-1234-4abc-9def-000000000001';

let root: { dir: string; cleanup: () => Promise<void> };
let volumes: string[];
beforeEach(async () => {
  root = await tempDir('arca-restore-wait-');
  volumes = ['data', 'logs', 'cache'].map((name) => path.join(root.dir, name));
  for (const dir of volumes) await mkdir(dir);
});
afterEach(async () => { await root.cleanup(); });

async function mark(dir: string, name: string, content = ''): Promise<void> {
  await mkdir(path.join(dir, '.arca'), { recursive: true });
  await writeFile(path.join(dir, '.arca', name), content);
}

/** Waits until the process has made its marker directories: it is then watching. */
async function watching(): Promise<void> {
  for (;;) {
    const present = await Promise.all(volumes.map((dir) => readdir(dir).then((names) => names.includes('.arca'))));
    if (present.every(Boolean)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('arca restore-wait', () => {
  it('exits 0 once every volume has its done marker, in any order, some there before it starts, and removes them', async () => {
    await mark(volumes[1] ?? '', UID);
    const child = startArca(['restore-wait', '--restore-uid', UID, ...volumes]);
    const result = collectOutput(child);
    await watching();
    await mark(volumes[2] ?? '', UID);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(child.exitCode).toBeNull(); // still waiting for the first volume
    await mark(volumes[0] ?? '', UID);
    const { code, stdout, stderr } = await result;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain('3 volumes restored');
    for (const dir of volumes) expect(await readdir(dir)).toEqual([]); // markers and the empty .arca gone
  });

  it('leaves each volume\'s root with the times it had once restored (removing .arca would change them)', async () => {
    for (const [i, dir] of volumes.entries()) {
      await mark(dir, UID);
      await utimes(dir, 1_500_000_000.123456 + i, String(-86_400.5 * (i + 1))); // before 1970: Node takes a negative number for "now", a string as it is
    }
    expect((await runArca(['restore-wait', '--restore-uid', UID, ...volumes])).code).toBe(0);
    for (const [i, dir] of volumes.entries()) {
      const { atimeNs, mtimeNs } = await stat(dir, { bigint: true });
      expect({ atimeUs: floorMicros(atimeNs), mtimeUs: floorMicros(mtimeNs) }).toEqual({ atimeUs: 1_500_000_000_123_456n + BigInt(i) * 1_000_000n, mtimeUs: -86_400_500_000n * BigInt(i + 1) });
    }
  });

  it('leaves markers of other restores alone', async () => {
    for (const dir of volumes) await mark(dir, UID);
    await mark(volumes[0] ?? '', 'another-restore');
    const { code } = await runArca(['restore-wait', '--restore-uid', UID, ...volumes]);
    expect(code).toBe(0);
    expect(await readdir(path.join(volumes[0] ?? '', '.arca'))).toEqual(['another-restore']);
  });

  it('exits non-zero with the agent\'s reason when a volume has a failed marker', async () => {
    const child = startArca(['restore-wait', '--restore-uid', UID, ...volumes]);
    const result = collectOutput(child);
    await watching();
    await mark(volumes[0] ?? '', UID);
    await mark(volumes[1] ?? '', `${UID}.failed`, 'snapshot 1a2b3c4d not found in repository default\n');
    const { code, stderr } = await result;
    expect(code).toBe(1);
    expect(stderr).toBe(`arca restore-wait: restoring ${volumes[1] ?? ''} failed: snapshot 1a2b3c4d not found in repository default\n`);
  });

  it('exits non-zero after the timeout naming the volumes still missing', async () => {
    await mark(volumes[1] ?? '', UID);
    const { code, stderr } = await runArca(['restore-wait', '--restore-uid', UID, '--timeout', '300ms', ...volumes]);
    expect(code).toBe(1);
    expect(stderr).toContain(`still waiting for ${volumes[0] ?? ''}, ${volumes[2] ?? ''} (no .arca/${UID} marker)`);
    expect(stderr).not.toContain(volumes[1] ?? '-');
  });

  it('times out, naming the volume, where the volume refuses a .arca directory instead of making it forever', async () => {
    // /proc/1 exists yet mkdir /proc/1/.arca says ENOENT, on which Node's recursive mkdir loops.
    const { code, stderr } = await runArca(['restore-wait', '--restore-uid', UID, '--timeout', '300ms', '/proc/1']);
    expect(code).toBe(1);
    expect(stderr).toContain(`still waiting for /proc/1 (no .arca/${UID} marker)`);
  });

  it('refuses bad usage with a clear message', async () => {
    expect(await runArca(['restore-wait', ...volumes])).toMatchObject({ code: 2, stderr: expect.stringContaining("required option '--restore-uid <uid>' not specified") as unknown });
    expect(await runArca(['restore-wait', '--restore-uid', UID, '--timeout', 'soon', ...volumes])).toMatchObject({ code: 2, stderr: expect.stringContaining('The --timeout "soon" is not a duration') as unknown });
    expect(await runArca(['restore-wait', '--restore-uid', '../x', ...volumes])).toMatchObject({ code: 2, stderr: expect.stringContaining('is not a restore UID') as unknown });
    expect(await runArca(['restore-wait', '--restore-uid', UID, path.join(root.dir, 'missing')])).toMatchObject({ code: 2, stderr: expect.stringContaining('does not exist') as unknown });
  });
});
