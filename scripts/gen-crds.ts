// Writes manifests/crds/ from the API types in kube/api/ (test/kube/crd-files.test.ts fails when they are stale).
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderCrdManifests } from '../kube/api/crds.ts';

const dir = join(import.meta.dirname, '..', 'manifests', 'crds');
await mkdir(dir, { recursive: true });
const files = renderCrdManifests();
for (const name of await readdir(dir)) if (!files.has(name)) await rm(join(dir, name));
for (const [name, content] of files) await writeFile(join(dir, name), content);
process.stdout.write(`wrote ${files.size} files to ${dir}\n`);
