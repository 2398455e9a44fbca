/**
 * `npm run cluster -- up DIR`: starts a control plane that outlives this command, writes
 * DIR/kubeconfig and links DIR/bin/kubectl. `npm run cluster -- down DIR` stops it.
 */
import { mkdir, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import {
  findControlPlaneBinaries, kubeCacheDir, readControlPlaneState, startControlPlane, stopProcesses,
} from './control-plane.ts';

const USAGE = 'usage: npm run cluster -- up DIR | down DIR';

async function up(dir: string): Promise<void> {
  if (await readControlPlaneState(dir).then(() => true, () => false)) {
    throw new Error(`${dir} already holds a control plane: stop it first with \`npm run cluster -- down ${dir}\``);
  }
  const binaries = await findControlPlaneBinaries(kubeCacheDir(process.env));
  await rm(path.join(dir, 'bin'), { recursive: true, force: true });
  await mkdir(path.join(dir, 'bin'), { recursive: true });
  await symlink(binaries.kubectl, path.join(dir, 'bin', 'kubectl'));
  const started = performance.now();
  const plane = await startControlPlane({ dir, binaries, detached: true });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log([
    `Kubernetes ${plane.version} (kube-apiserver + etcd) ready in ${seconds} s at ${plane.server}`,
    `  export KUBECONFIG=${plane.kubeconfig} PATH=${path.join(dir, 'bin')}:$PATH`,
    '  kubectl get namespaces',
    `Logs: ${path.join(dir, '*.log')}. No scheduler or kubelet: pods stay Pending.`,
    `Stop it with: npm run cluster -- down ${dir}`,
  ].join('\n'));
}

async function down(dir: string): Promise<void> {
  const state = await readControlPlaneState(dir).catch(() => {
    throw new Error(`${dir} holds no control plane started by \`npm run cluster -- up\``);
  });
  await stopProcesses(state.processes);
  await rm(path.join(dir, 'control-plane.json'));
  console.log(`Stopped the control plane in ${dir} (logs kept there).`);
}

const [command, dirArgument, ...rest] = process.argv.slice(2);
try {
  if (dirArgument === undefined || rest.length > 0) throw new Error(USAGE);
  const dir = path.resolve(dirArgument);
  if (command === 'up') await up(dir);
  else if (command === 'down') await down(dir);
  else throw new Error(USAGE);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
