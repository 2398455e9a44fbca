import { chmod, link, lstat, mkdir, readdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupPodVolume, restorePodVolume } from '../../agent/data-path.ts';
import { VolumeJobError } from '../../agent/errors.ts';
import { backupVolume, initRepository, type Repository } from '../../engine/index.ts';
import type { VolumeSnapshotMetadata } from '../../repository-access/snapshot-labels.ts';
import { asObject, scanTree } from '../support/fs-tree.ts';
import { MemoryLogger } from '../support/memory-logger.ts';
import { makePodsDir, mountVolume } from './kubelet-layout.ts';

const PV = 'kubernetes.io~csi';
const metadata = (podUid: string, node: string): VolumeSnapshotMetadata => ({
  cluster: 'test', namespace: 'shop', pod: 'db-0', podUid, volume: 'data', pvc: 'data-db-0', node, backupSet: 'set-1',
});

describe('the agent\'s data path: the volume directory is the snapshot\'s root', () => {
  let root: string;
  let podsDir: string;
  let repo: Repository;
  const logger = new MemoryLogger();
  const request = { signal: new AbortController().signal, logger, onProgress: (): void => undefined, workers: 1 };

  beforeAll(async () => {
    ({ root, podsDir } = await makePodsDir());
    repo = await initRepository({ url: path.join(root, 'repo'), password: 'pw', kdf: { fixedN: 1024 } });
  });
  afterAll(async () => {
    await repo.close();
    await rm(root, { recursive: true, force: true });
  });

  async function fill(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'sub', 'deep'), { recursive: true });
    await writeFile(path.join(dir, 'a.txt'), 'hello\n');
    await writeFile(path.join(dir, 'sub', 'deep', 'big.bin'), Buffer.alloc(2 << 20, 3));
    await link(path.join(dir, 'a.txt'), path.join(dir, 'sub', 'hardlink'));
    await symlink('/etc/passwd', path.join(dir, 'link-out'));
    // Left by an earlier restore: the agent's, not the app's.
    await mkdir(path.join(dir, '.arca'));
    await writeFile(path.join(dir, '.arca', 'r-old'), '');
    await chmod(path.join(dir, 'sub'), 0o750);
    await utimes(path.join(dir, 'sub', 'deep'), 1_600_000_000.5, 1_600_000_000.5);
    await chmod(dir, 0o2770);
    await utimes(dir, 1_500_000_000, 1_500_000_000);
  }

  const withoutMarkers = (scan: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(scan).filter(([p]) => !p.startsWith('.arca')));

  it('backs up the contents (the path only recorded), restores them straight into another pod\'s volume, and finds the parent after a reschedule', async () => {
    const volume = await mountVolume(podsDir, 'uid-1', PV, 'pv-1', true);
    await fill(volume);
    const first = await backupPodVolume({ ...request, repo, volumeDir: volume, metadata: metadata('uid-1', 'node-a'), tags: [] });
    if (first.outcome.status !== 'completed') throw new Error('the backup did not complete');
    expect(first.outcome.snapshot).toMatchObject({ paths: [volume], root: { mode: 0o2770, mtime: '1500000000000000000' } });
    expect(first.outcome.summary).toMatchObject({ files_new: 3, total_files_processed: 3 });
    // The tree is the volume's contents: its top names are the volume's, without the markers.
    await repo.loadIndex();
    const top = await repo.loadTree(Buffer.from(first.outcome.snapshot.tree, 'hex'));
    expect(top.nodes.map((n) => n.name.toString()).sort()).toEqual(['a.txt', 'link-out', 'sub']);

    // Restored into a new pod's volume: no staging, the root's own mode and times, only this restore's marker.
    const target = await mountVolume(podsDir, 'uid-2', PV, 'pv-1', true);
    const restored = await restorePodVolume({ ...request, repo, volumeDir: target, snapshotId: first.outcome.snapshotId, restoreUid: 'r-1' });
    expect(restored.status).toBe('completed');
    expect(await readdir(path.join(target, '.arca'))).toEqual(['r-1']);
    expect(withoutMarkers(asObject(await scanTree(target)))).toEqual(withoutMarkers(asObject(await scanTree(volume))));

    // The same PV mounted for a rescheduled pod (a new UID in the path): its unchanged files are not read again.
    await rm(path.join(podsDir, 'uid-2'), { recursive: true });
    const moved = path.join(podsDir, 'uid-3', 'volumes', PV, 'pv-1', 'mount');
    await mkdir(path.dirname(moved), { recursive: true });
    await rename(volume, moved);
    const again = await backupPodVolume({ ...request, repo, volumeDir: moved, metadata: metadata('uid-3', 'node-b'), tags: [] });
    if (again.outcome.status !== 'completed') throw new Error('the backup did not complete');
    expect(again.outcome.snapshot.parent).toBe(first.outcome.snapshotId);
    expect(again.outcome.snapshot.tree).toBe(first.outcome.snapshot.tree);
    expect(again.outcome.summary).toMatchObject({ files_new: 0, files_changed: 0, files_unmodified: 3, dirs_unmodified: 3 });
    expect(again.outcome.summary.data_added).toBe(0);
  });

  it('a re-run of a job whose snapshot was saved takes that snapshot instead of making a second one', async () => {
    const volume = await mountVolume(podsDir, 'uid-8', 'kubernetes.io~empty-dir', 'data');
    await writeFile(path.join(volume, 'f'), 'saved before the status was written\n');
    const meta = { ...metadata('uid-8', 'node-a'), pvc: 'rerun', podVolumeBackupUid: 'pvb-uid-1' };
    const first = await backupPodVolume({ ...request, repo, volumeDir: volume, metadata: meta, tags: [] });
    if (first.outcome.status !== 'completed') throw new Error('the backup did not complete');
    const ofTheJob = async (): Promise<string[]> => (await repo.listSnapshots({ labels: { 'arca.dev/pvc': 'rerun' } })).map((s) => s.id);

    // The volume changed since: a second backup would make a new snapshot with another tree.
    await writeFile(path.join(volume, 'g'), 'written after\n');
    const again = await backupPodVolume({ ...request, repo, volumeDir: volume, metadata: meta, tags: [], rerun: true });
    if (again.outcome.status !== 'completed') throw new Error('the backup did not complete');
    expect(await ofTheJob()).toEqual([first.outcome.snapshotId]);
    expect(again.outcome.snapshotId).toBe(first.outcome.snapshotId);
    expect(again.outcome.summary).toEqual(first.outcome.summary);
    expect(again.saved).toBe(true);
    expect(first.outcome.snapshot.labels).toMatchObject({ 'arca.dev/pod-volume-backup-uid': 'pvb-uid-1' });

    // Another job for the same volume (another UID) backs up, even when re-run.
    const other = await backupPodVolume({ ...request, repo, volumeDir: volume, metadata: { ...meta, podVolumeBackupUid: 'pvb-uid-2' }, tags: [], rerun: true });
    if (other.outcome.status !== 'completed') throw new Error('the backup did not complete');
    expect(other.saved).toBe(false);
    expect((await ofTheJob()).sort()).toEqual([first.outcome.snapshotId, other.outcome.snapshotId].sort());
  });

  it('restores nothing through a symlink planted in the volume where the snapshot has a directory', async () => {
    const source = await mountVolume(podsDir, 'uid-4', 'kubernetes.io~empty-dir', 'data');
    await mkdir(path.join(source, 'sub'));
    await writeFile(path.join(source, 'sub', 'f'), 'inside\n');
    const { outcome } = await backupPodVolume({ ...request, repo, volumeDir: source, metadata: { ...metadata('uid-4', 'node-a'), pvc: 'other' }, tags: [] });
    if (outcome.status !== 'completed') throw new Error('the backup did not complete');
    const target = await mountVolume(podsDir, 'uid-5', 'kubernetes.io~empty-dir', 'data');
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(target, 'sub'));
    await symlink(outside, path.join(target, '.arca'));
    expect((await restorePodVolume({ ...request, repo, volumeDir: target, snapshotId: outcome.snapshotId, restoreUid: 'r-2' })).status).toBe('completed');
    expect(await readdir(outside)).toEqual([]);
    expect((await lstat(path.join(target, 'sub'))).isDirectory()).toBe(true);
    expect(await readFile(path.join(target, 'sub', 'f'), 'utf8')).toBe('inside\n');
    expect(await readdir(path.join(target, '.arca'))).toEqual(['r-2']);
  });

  it('refuses a snapshot that is not of one volume (the CLI\'s tree from /), and says so in the failed marker', async () => {
    const dir = await mountVolume(podsDir, 'uid-6', 'kubernetes.io~empty-dir', 'data');
    await writeFile(path.join(dir, 'f'), 'x');
    const cli = await backupVolume(repo, dir);
    if (cli.status !== 'completed') throw new Error('the backup did not complete');
    const target = await mountVolume(podsDir, 'uid-7', 'kubernetes.io~empty-dir', 'data');
    const err: unknown = await restorePodVolume({ ...request, repo, volumeDir: target, snapshotId: cli.snapshotId, restoreUid: 'r-3' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeJobError);
    expect((err as VolumeJobError).code).toBe('ARCA_AGENT_NOT_A_VOLUME');
    expect(await readFile(path.join(target, '.arca', 'r-3.failed'), 'utf8')).toMatch(/is not of one volume/);
    expect(await readdir(target)).toEqual(['.arca']);
  });
});
