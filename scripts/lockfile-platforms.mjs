#!/usr/bin/env node
// Adds lock entries for platform-specific optional packages (other OSes and CPUs) that npm left
// out: this environment's registry serves only stubs for them, so `npm install` records them
// without an entry, and `npm ci` then refuses the lock as out of sync. Each added entry names
// its os/cpu, so npm ci skips it here and installs it where it belongs.
// Run after `npm install` changes package-lock.json: node scripts/lockfile-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
const PLATFORM = /-(android|darwin|freebsd|linux|win32|openbsd|openharmony)-([a-z0-9]+)(?:-(gnu|musl|msvc|gnueabihf|musleabihf|eabi))?$/;
let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = path === '' ? `node_modules/${dep}` : `${path}/node_modules/${dep}`;
    if (packages[nested] || packages[`node_modules/${dep}`]) continue;
    const m = PLATFORM.exec(dep);
    const added_entry = { version, ...(entry.dev ? { dev: true } : {}), optional: true };
    if (m) {
      added_entry.cpu = [m[2]];
      added_entry.os = [m[1]];
      if (m[3] && m[3] !== 'msvc' && m[3] !== 'eabi') added_entry.libc = [m[3].includes('musl') ? 'musl' : 'glibc'];
    }
    packages[`node_modules/${dep}`] = added_entry;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} platform entries to package-lock.json`);
