#!/usr/bin/env bash
# The README's first command: build Arca, then init a local repository, back up a directory,
# list snapshots and restore the latest one, checking that the restore matches the source.
# Usage: npm run quickstart [-- DIR]   (default DIR: this repository, without node_modules and build output)
set -euo pipefail
cd "$(dirname "$0")/.."
demo="$PWD/.arca-demo"
export ARCA_REPOSITORY="${ARCA_REPOSITORY:-$demo/repo}"
if [ -z "${ARCA_PASSWORD:-}${ARCA_PASSWORD_FILE:-}" ]; then
  export ARCA_PASSWORD="arca-demo-password"
  echo "(demo) ARCA_PASSWORD is not set; using a demo password for $ARCA_REPOSITORY"
fi
src="$(cd "${1:-$PWD}" && pwd)"
skip=(node_modules dist .arca-demo .git)
node_bin="node_modules/.bin/node"; [ -x "$node_bin" ] || node_bin=node
arca() { "$node_bin" dist/cli/main.js "$@"; }

[ -e "$ARCA_REPOSITORY/config" ] || arca init
excludes=(); for s in "${skip[@]}"; do excludes+=(--exclude "$s"); done
arca backup "$src" "${excludes[@]}"
arca snapshots
target="$demo/restore-$(date +%Y%m%d-%H%M%S)"
arca restore latest --target "$target" --verify
diffx=(); for s in "${skip[@]}"; do diffx+=(-x "$s"); done
diff -r "${diffx[@]}" "$src" "$target$src" && echo "restored copy in $target matches $src"
arca check
