// `arca restore-wait`: the init container the restore webhook injects. It waits until the agent has
// restored every listed volume (done marker <dir>/.arca/<uid>), removes the markers and exits 0, so
// the app starts on its data; it fails with the agent's reason (<dir>/.arca/<uid>.failed) or, after
// the timeout, names the volumes still missing, so a pod never waits silently.
// Imports nothing but chokidar, commander, a duration parser and the marker names it shares with
// the agent: it must start at once and cannot break with the engine.
import { readFile, rm, rmdir, mkdir, access, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { watch } from 'chokidar';
import { Command, Option, parseCommandLine, withDuration } from '../kube/command-line.ts';
import { parseDuration } from '../kube/duration.ts';
import { isRestoreUid, MARKER_DIR } from '../kube/api/restore-markers.ts';

/** Markers are re-checked this often too, for file systems whose changes inotify does not see (NFS, FUSE). */
const RECHECK_MS = 2_000;
const DEFAULT_TIMEOUT = '4h';

interface Options {
  restoreUid: string;
  timeout: number;
}

type VolumeState = { dir: string; state: 'waiting' | 'done' } | { dir: string; state: 'failed'; reason: string };

export async function run(argv: readonly string[]): Promise<number> {
  const command = new Command('arca restore-wait')
    .description('Waits until the node agent has restored each VOLUME_DIR (the restore init container).')
    .argument('<VOLUME_DIR...>', 'mounted volume directories the agent restores into')
    .requiredOption('--restore-uid <uid>', 'the restore this pod waits for (its markers are .arca/<uid> and .arca/<uid>.failed)')
    .addOption(new Option('--timeout <duration>', 'give up after this long, naming the volumes still missing')
      .argParser(withDuration((text) => parseDuration(text, '--timeout'))).default(parseDuration(DEFAULT_TIMEOUT), DEFAULT_TIMEOUT));
  const parsed = parseCommandLine<Options>(command, argv);
  if (!parsed.ok) return parsed.exitCode;
  const { restoreUid, timeout } = parsed.options;
  if (!isRestoreUid(restoreUid)) {
    process.stderr.write(`arca restore-wait: --restore-uid "${restoreUid}" is not a restore UID (letters, digits, '.', '_' and '-').\n`);
    return 2;
  }
  const dirs = [...new Set(parsed.args)];
  for (const dir of dirs) {
    try {
      await access(dir);
    } catch {
      process.stderr.write(`arca restore-wait: the volume directory ${dir} does not exist; check the init container's volumeMounts.\n`);
      return 2;
    }
  }
  const outcome = await waitForMarkers(dirs, restoreUid, timeout);
  if (outcome.kind === 'failed') {
    process.stderr.write(`arca restore-wait: restoring ${outcome.dir} failed: ${outcome.reason}\n`);
    return 1;
  }
  if (outcome.kind === 'timeout') {
    process.stderr.write(`arca restore-wait: timed out after ${parsed.options.timeout / 1000}s; still waiting for ${outcome.missing.join(', ')} (no ${MARKER_DIR}/${restoreUid} marker): is the arca agent running on this node?\n`);
    return 1;
  }
  for (const dir of dirs) {
    // Removing .arca changes the volume root's times, which the agent restored from the snapshot.
    const root = await stat(dir, { bigint: true });
    await rm(join(dir, MARKER_DIR, restoreUid), { force: true });
    const removed = await rmdir(join(dir, MARKER_DIR)).then(() => true, () => false); // only when empty: other restores may still be using it
    if (removed) await utimes(dir, utimeSeconds(root.atimeNs), utimeSeconds(root.mtimeNs));
  }
  process.stdout.write(`arca restore-wait: ${dirs.length} volume${dirs.length === 1 ? '' : 's'} restored\n`);
  return 0;
}

type Outcome = { kind: 'done' } | { kind: 'failed'; dir: string; reason: string } | { kind: 'timeout'; missing: string[] };

async function waitForMarkers(dirs: string[], uid: string, timeoutMs: number): Promise<Outcome> {
  // The marker directory may not exist yet; creating it lets us watch it (the agent writes into it).
  // One level, never recursive: Node's recursive mkdir loops where a volume refuses a child (/proc).
  const markerDirs = dirs.map((dir) => join(dir, MARKER_DIR));
  await Promise.all(markerDirs.map((dir) => mkdir(dir).catch(() => undefined)));
  const watcher = watch(markerDirs, { depth: 0, ignoreInitial: true });
  let timer: NodeJS.Timeout | undefined;
  let recheck: NodeJS.Timeout | undefined;
  try {
    return await new Promise<Outcome>((resolve) => {
      // Checks run one after another, one per event.
      let queue = Promise.resolve();
      const checkOnce = async (): Promise<void> => {
        const states = await Promise.all(dirs.map((dir) => stateOf(dir, uid)));
        const failed = states.find((s) => s.state === 'failed');
        if (failed?.state === 'failed') resolve({ kind: 'failed', dir: failed.dir, reason: failed.reason });
        else if (states.every((s) => s.state === 'done')) resolve({ kind: 'done' });
      };
      const check = (): Promise<void> => (queue = queue.then(checkOnce));
      const onEvent = () => { void check(); };
      watcher.on('add', onEvent).on('change', onEvent).on('ready', onEvent);
      watcher.on('error', onEvent);
      recheck = setInterval(onEvent, RECHECK_MS);
      timer = setTimeout(() => {
        void Promise.all(dirs.map((dir) => stateOf(dir, uid))).then((states) => {
          resolve({ kind: 'timeout', missing: states.filter((s) => s.state === 'waiting').map((s) => s.dir) });
        });
      }, timeoutMs);
      void check();
    });
  } finally {
    clearTimeout(timer);
    clearInterval(recheck);
    await watcher.close();
  }
}

/**
 * A time for utimes as a numeric string of seconds (Node passes strings on; it would turn a
 * negative number into "now"): the middle of its microsecond, which the float Node converts
 * it through cannot push into another one. Node cannot set times finer than that anyway.
 */
function utimeSeconds(ns: bigint): string {
  const micros = ns >= 0n ? ns / 1000n : -((-ns + 999n) / 1000n);
  const middle = micros * 1000n + 500n;
  const abs = middle < 0n ? -middle : middle;
  return `${middle < 0n ? '-' : ''}${abs / 1_000_000_000n}.${(abs % 1_000_000_000n).toString().padStart(9, '0')}`;
}

async function stateOf(dir: string, uid: string): Promise<VolumeState> {
  const markers = join(dir, MARKER_DIR);
  try {
    const reason = (await readFile(join(markers, `${uid}.failed`), 'utf8')).trim();
    return { dir, state: 'failed', reason: reason === '' ? 'the agent gave no reason' : reason };
  } catch {
    // no failed marker
  }
  try {
    await access(join(markers, uid));
    return { dir, state: 'done' };
  } catch {
    return { dir, state: 'waiting' };
  }
}
