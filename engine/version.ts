import { readFileSync } from 'node:fs';

/**
 * Arca's version: package.json's, the one place it is written. Arca runs from source
 * (engine/version.ts) and built (dist/engine/version.js), so the file is looked for upwards.
 */
export const VERSION: string = readVersion();

function readVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    let text: string;
    try {
      text = readFileSync(new URL(relative, import.meta.url), 'utf8');
    } catch {
      continue;
    }
    const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
    if (pkg.name === 'arca' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error('Arca\'s package.json was not found above engine/; the installation is incomplete.');
}
