/** Writes the generated command reference into docs/cli.md (npm run gen:cli-docs). */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderReference, withReference } from '../cli/reference.ts';

const file = new URL('../docs/cli.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withReference(before, renderReference());
if (after === before) {
  process.stdout.write('docs/cli.md is current\n');
} else {
  writeFileSync(file, after);
  process.stdout.write('docs/cli.md updated\n');
}
