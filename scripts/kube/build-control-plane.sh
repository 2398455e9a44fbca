#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the pinned Go module versions in versions.env, once
# per machine, into ${ARCA_KUBE_CACHE:-$HOME/.cache/arca/kube}/<kubernetes-version>/bin/.
# A second run with the binaries present returns at once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${ARCA_KUBE_CACHE:-$HOME/.cache/arca/kube}
root=$cache/$KUBERNETES_VERSION
bin=$root/bin
binaries=(kube-apiserver kubectl etcd)

step() { printf '[build-control-plane] %s\n' "$*" >&2; }
fail() { printf '[build-control-plane] error: %s\n' "$*" >&2; exit 1; }

complete() {
  local name
  for name in "${binaries[@]}"; do [[ -x $bin/$name ]] || return 1; done
}

if complete; then
  step "kube-apiserver, kubectl and etcd $KUBERNETES_VERSION/$ETCD_VERSION already built in $bin"
  exit 0
fi

# Go's own installer puts it here, not always on PATH.
[[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 ||
  fail "the Go toolchain ('go') is not on PATH; install Go (1.26 or newer for Kubernetes v1.37) and run this script again"

mkdir -p "$root"
# One build per machine at a time: a second caller waits, then finds the binaries built.
exec 9>"$root/.lock"
flock 9
if complete; then
  step "built by another run meanwhile: $bin"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
work=$root/work
staged=$root/bin.partial
rm -rf "$work" "$staged"
mkdir -p "$work/kubernetes" "$work/etcd" "$staged"
started=$SECONDS
step "using $(go version)"

# --- etcd: its own module, so neither build raises the other's dependencies -------------------
step "etcd $ETCD_VERSION: resolving modules"
cd "$work/etcd"
cat >go.mod <<MOD
module arca.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

tool go.etcd.io/etcd/server/v3
MOD
go mod tidy
step "etcd $ETCD_VERSION: compiling"
go build -trimpath -ldflags "-s -w" -o "$staged/etcd" go.etcd.io/etcd/server/v3

# --- kube-apiserver and kubectl --------------------------------------------------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with paths inside its
# own tree, which Go ignores in a dependency; our module replaces each with its published release.
step "kubernetes $KUBERNETES_VERSION: reading the release's go.mod"
cd "$work/kubernetes"
download=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$download"; }
upstream_mod=$(json_field GoMod)
release_time=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(json_field Info)")
[[ -f $upstream_mod ]] || fail "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
staging_version=v0.${KUBERNETES_VERSION#v1.}
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$upstream_mod")
((${#staging[@]} > 0)) || fail "found no staging-module replace lines in $upstream_mod"
go_directive=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod")
# godebug settings only count in the main module: carry the release's over.
godebug=$(sed -n -e '/^godebug[[:space:]]*(/,/^)/p' -e '/^godebug[[:space:]]*[^([:space:]]/p' "$upstream_mod")
step "kubernetes $KUBERNETES_VERSION: ${#staging[@]} staging modules at $staging_version, go $go_directive"
{
  printf 'module arca.local/kubernetes-build\n\ngo %s\n\n' "$go_directive"
  [[ -z $godebug ]] || printf '%s\n\n' "$godebug"
  printf 'require k8s.io/kubernetes %s\n\n' "$KUBERNETES_VERSION"
  for module in "${staging[@]}"; do printf 'replace %s => %s %s\n' "$module" "$module" "$staging_version"; done
  printf '\ntool (\n\tk8s.io/kubernetes/cmd/kube-apiserver\n\tk8s.io/kubernetes/cmd/kubectl\n)\n'
} >go.mod
step "kubernetes $KUBERNETES_VERSION: resolving modules"
go mod tidy

# Without the stamp /version reports v0.0.0-master, and a wrong minor changes feature gates.
major=${KUBERNETES_VERSION#v}; major=${major%%.*}
minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  # The module zip carries no commit hash; the release time makes the build reproducible.
  ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$release_time"
done
for name in kube-apiserver kubectl; do
  step "kubernetes $KUBERNETES_VERSION: compiling $name"
  go build -trimpath -ldflags "$ldflags" -o "$staged/$name" "k8s.io/kubernetes/cmd/$name"
done

rm -rf "$bin"
mv "$staged" "$bin"
rm -rf "$work"
step "done in $((SECONDS - started)) s: $bin"
ls -l "$bin" >&2
