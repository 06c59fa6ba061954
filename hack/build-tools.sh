#!/usr/bin/env bash
# Builds the pinned Kubernetes toolchain from the Go modules under hack/tools/ and links the
# binaries into .tools/bin.
#
# Each module's binaries are cached outside the checkout in
#   ${SPRECHZIMMER_CACHE:-~/.cache/sprechzimmer}/tools/<module>-<version>-<hash>/
# where <hash> covers go.mod, go.sum, the module's own sources and the Go version, so a later run
# (or CI on the same machine) reuses them and any pin change rebuilds exactly what changed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SPRECHZIMMER_CACHE:-$HOME/.cache/sprechzimmer}/tools
bin="$repo/.tools/bin"
mkdir -p "$cache" "$bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# module  version-module  packages...
modules=(
  "kube k8s.io/kubernetes ./cmd/etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  "kwok sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok"
  "helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm"
  "kind sigs.k8s.io/kind sigs.k8s.io/kind"
)

ldflags_for() { # module version
  local v=$2 minor
  case $1 in
    kube)
      minor=$(echo "$v" | cut -d. -f2)
      local x=""
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      done
      echo "-s -w$x" ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" ;;
    helm) echo "-s -w -X helm.sh/helm/v3/internal/version.version=$v" ;;
    *) echo "-s -w" ;;
  esac
}

for entry in "${modules[@]}"; do
  read -r name vmod pkgs <<<"$entry"
  dir="$repo/hack/tools/$name"
  version=$(awk -v m="$vmod" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$dir/go.mod")
  hash=$( (cat "$dir/go.mod" "$dir/go.sum"; find "$dir" -name '*.go' -print0 | sort -z | xargs -0r cat; go version; ldflags_for "$name" "$version") | sha256sum | cut -c1-12)
  out="$cache/$name-$version-$hash"
  complete=false
  if [ -f "$out/.complete" ]; then
    complete=true
    for pkg in $pkgs; do # a package added to the list above is a miss too
      [ -x "$out/$(basename "$pkg")" ] || complete=false
    done
  fi
  if [ "$complete" = false ]; then
    echo "build-tools: building $name $version (cache miss: $out)" >&2
    start=$(date +%s)
    # Its own temporary directory: two checkouts on one machine may build the same key at once.
    tmp=$(mktemp -d "$out.tmp.XXXXXX")
    # shellcheck disable=SC2086  # pkgs is a word list on purpose
    (cd "$dir" && go build -ldflags "$(ldflags_for "$name" "$version")" -o "$tmp/" $pkgs)
    touch "$tmp/.complete"
    chmod 755 "$tmp"
    rm -rf "$out" && mv -T "$tmp" "$out"
    echo "build-tools: built $name $version in $(( $(date +%s) - start ))s" >&2
  fi
  for b in "$out"/*; do
    ln -sfn "$b" "$bin/$(basename "$b")"
  done
done
