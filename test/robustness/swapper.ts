// Swaps a path inside a tree back and forth with a symlink to a directory or file outside it
// (or, for "rename", with a sibling), as a hostile tenant would while a backup or restore runs.
// Usage: node swapper.ts MODE PATH OTHER STOPFILE; stops when STOPFILE exists or after 120 s.
import fs from 'node:fs';

const [mode, victim = "", other = "", stopFile = ""] = process.argv.slice(2);
const aside = `${victim}.aside`;
const until = Date.now() + 120_000;
let swaps = 0;
const quiet = (fn: () => void): void => { try { fn(); } catch { /* the tree under test may hold it for a moment */ } };
while (!fs.existsSync(stopFile) && Date.now() < until) {
  for (let i = 0; i < 200; i++) {
    if (mode === 'symlink') {
      quiet(() => { fs.renameSync(victim, aside); });
      quiet(() => { fs.symlinkSync(other, victim); });
      quiet(() => { fs.unlinkSync(victim); });
      quiet(() => { fs.renameSync(aside, victim); });
    } else {
      // Exchange two entries of the tree by renames.
      quiet(() => { fs.renameSync(victim, aside); });
      quiet(() => { fs.renameSync(other, victim); });
      quiet(() => { fs.renameSync(aside, other); });
    }
    swaps++;
  }
}
process.stdout.write(`${swaps}\n`);
