#!/usr/bin/env bash
# Checks the prune and lease protocol model (docs/model/prune.pml) with spin: every interleaving of
# a backup, two prunes, a heartbeat, a crash and a forget, with the safety properties asserted in
# every reachable state. Needs spin and a C compiler (Debian: apt-get install spin gcc).
#
#   docs/model/check.sh              supertrace (bitstate) search: 1 GiB, about 15 minutes on one core,
#                                    covers nearly all states (spin prints the hash factor)
#   BITS=28 docs/model/check.sh      the same with a 2^28-bit (32 MiB) table: minutes, fewer states
#   EXHAUSTIVE=1 docs/model/check.sh every state stored (compressed): needs well over 8 GiB
#   SPIN_FLAGS=-DNO_FORGET ...       leaves the user's forget out (a smaller state space)
#
# Prints spin's summary; exits non-zero on a violation (the trail is left beside the model:
# spin -t -p prune.pml replays it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/arca-spin-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$here/prune.pml" prune.pml
# shellcheck disable=SC2086
spin ${SPIN_FLAGS:-} -a prune.pml >/dev/null
if [ "${EXHAUSTIVE:-}" = 1 ]; then
  gcc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c
  ./pan -m200000 -w27 | tee pan.out | grep -vE '^Depth=' || true
else
  gcc -O2 -DSAFETY -DBITSTATE -o pan pan.c
  ./pan -m200000 "-w${BITS:-33}" | tee pan.out | grep -vE '^Depth=' || true
fi
if grep -qE 'errors: [1-9]|assertion violated' pan.out; then
  cp prune.pml.trail "$here/prune.pml.trail" 2>/dev/null || true
  echo "violation: the trail is docs/model/prune.pml.trail (spin -t -p prune.pml)" >&2
  exit 1
fi
grep -q 'errors: 0' pan.out
