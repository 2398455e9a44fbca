import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * One scratch directory per test run, for what test processes keep across tests (Arca's cache of
 * each test process); removed when the run ends, so runs leave nothing behind in the temp dir.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'arca-test-run-'));
  process.env.ARCA_TEST_RUN_DIR = root;
  return async () => {
    await rm(root, { recursive: true, force: true });
  };
}
