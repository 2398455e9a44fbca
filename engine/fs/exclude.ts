import path from 'node:path';

/**
 * `--exclude` patterns: a pattern with a "/" matches the whole absolute path, one without
 * matches the base name at any depth (so "*.tmp" and "node_modules" work as users expect).
 */
export function isExcluded(full: Buffer, patterns: readonly string[]): boolean {
  if (patterns.length === 0) return false;
  const text = full.toString('utf8');
  const base = text.slice(text.lastIndexOf('/') + 1);
  return patterns.some((pattern) => path.matchesGlob(pattern.includes('/') ? text : base, pattern));
}
