import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  ControlPlaneBinariesMissingError, findControlPlaneBinaries, kubeCacheDir, startControlPlane,
} from '../../scripts/kube/control-plane.ts';

/** What the kube project's tests get through `inject('kube')`; nothing when the binaries are not built. */
export interface ProvidedKube {
  /** Admin (system:masters) kubeconfig of the run's control plane. */
  readonly kubeconfig: string;
  readonly kubectl: string;
  /** The pinned Kubernetes version the binaries were built from, e.g. `v1.37.2`. */
  readonly version: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kube?: ProvidedKube;
  }
}

/**
 * Starts one control plane for the whole kube test project (vitest runs this only when the run
 * selects a kube test). Without built binaries the kube tests are skipped with one line saying how
 * to build them, except in CI, where that fails the run.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  let binaries;
  try {
    binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
  } catch (err) {
    if (!(err instanceof ControlPlaneBinariesMissingError) || inCi(process.env.CI)) throw err;
    console.warn(`Skipping the Kubernetes tests: ${err.message}`);
    return undefined;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-kube-'));
  try {
    const plane = await startControlPlane({ dir, binaries });
    project.provide('kube', { kubeconfig: plane.kubeconfig, kubectl: binaries.kubectl, version: binaries.version });
    return async () => {
      await plane.stop();
      await rm(dir, { recursive: true, force: true });
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function inCi(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value !== 'false';
}
