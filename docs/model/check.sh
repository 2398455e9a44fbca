#!/usr/bin/env bash
# Checks the prune and lease protocol model (docs/model/prune.pml) with spin: every interleaving of
# a backup, two prunes, a heartbeat, a crash and a forget, with the three safety properties
# asserted in every reachable state. Needs spin and a C compiler (Debian: apt-get install spin gcc).
# Prints spin's summary; exits non-zero on a violation (then see the trail: spin -t -p prune.pml).
set -euo pipefail
model="$(cd "$(dirname "$0")" && pwd)/prune.pml"
work="$(mktemp -d "${TMPDIR:-/tmp}/arca-spin-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$model" prune.pml
spin -a prune.pml >/dev/null
# SAFETY: assertions only (no never claim); COLLAPSE: compressed state vectors (~1.5 GB at most).
gcc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c
./pan -m200000 -w26 | tee pan.out | grep -vE '^Depth=' || true
if grep -qE 'errors: [1-9]|assertion violated' pan.out; then
  cp prune.pml.trail "$(dirname "$model")/prune.pml.trail" 2>/dev/null || true
  echo "violation: the trail is docs/model/prune.pml.trail (spin -t -p prune.pml)" >&2
  exit 1
fi
grep -q 'errors: 0' pan.out
