import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * `npm ci` refuses a lock in which an optional dependency has no entry; npm leaves such entries
 * out here for other platforms' binaries (see scripts/lockfile-platforms.mjs). CI would fail on
 * a fresh machine, so this catches it before a commit does.
 */
describe('package-lock.json', () => {
  it('has an entry for every optional dependency, so npm ci accepts it', () => {
    const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as {
      packages: Record<string, { optionalDependencies?: Record<string, string> }>;
    };
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
        const nested = path === '' ? `node_modules/${dep}` : `${path}/node_modules/${dep}`;
        if (!(nested in lock.packages) && !(`node_modules/${dep}` in lock.packages)) missing.push(`${dep} (of ${path || 'the project'})`);
      }
    }
    expect(missing, 'run: node scripts/lockfile-platforms.mjs').toEqual([]);
  });
});
