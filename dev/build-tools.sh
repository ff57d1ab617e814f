#!/usr/bin/env bash
# Builds the local control-plane binaries from Go modules at the versions pinned in
# dev/versions.env and caches them under ${EDGELINE_CACHE:-~/.cache/edgeline}/bin as
# <component>-<version>. A binary already in the cache is never rebuilt.
#
#   dev/build-tools.sh [component ...]   (default: all of them)
#
# Components: kube-apiserver kube-controller-manager kube-scheduler etcd kwok helm
#             kubelet containerd containerd-shim-runc-v2 (the real nodes of `edgeline dev up`)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${EDGELINE_CACHE:-$HOME/.cache/edgeline}
bin="$cache/bin"
work="$cache/build"
mkdir -p "$bin" "$work"

command -v go >/dev/null || { echo "build-tools: Go is not installed; it is needed to build the control plane" >&2; exit 1; }
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0

log() { printf '[build-tools] %s\n' "$*" >&2; }

k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
k8s_staging_version="v0.${KUBERNETES_VERSION#v1.}"

k8s_ldflags() {
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$flags"
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# ./staging paths, which a dependent module cannot see. This wrapper module maps each
# of them to the published v0.X.Y release of the same patch version.
k8s_module() {
  local dir="$work/kubernetes-$KUBERNETES_VERSION"
  if [ -f "$dir/.ready" ]; then printf '%s' "$dir"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  (
    cd "$dir"
    go mod init edgeline.local/k8s-tools >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    local staging
    staging=$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod" | sort -u)
    [ -n "$staging" ] || { log "no staging modules found in $gomod"; exit 1; }
    for m in $staging; do
      go mod edit -replace "$m=$m@$k8s_staging_version"
    done
    go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" \
           "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
           "k8s.io/kubernetes/cmd/kube-scheduler@$KUBERNETES_VERSION" \
           "k8s.io/kubernetes/cmd/kubelet@$KUBERNETES_VERSION" >&2
    echo kubelet >.commands
    touch .ready
  ) || { log "preparing the k8s.io/kubernetes wrapper module failed"; exit 1; }
  printf '%s' "$dir"
}

# All Kubernetes commands asked for in ONE `go build`: the packages they share (most of them) are
# compiled once and the links run beside the compiles; separate builds would each load the package
# graph again and link one after the other (docs/decisions.md, "health").
build_k8s() {
  local names=() pkgs=() name dir out="$work/k8s-out-$KUBERNETES_VERSION"
  for name in "$@"; do
    [ -x "$bin/$name-$KUBERNETES_VERSION" ] || { names+=("$name"); pkgs+=("k8s.io/kubernetes/cmd/$name"); }
  done
  [ ${#names[@]} -gt 0 ] || return 0
  dir=$(k8s_module)
  # A wrapper module prepared before the kubelet was part of it lacks some of its go.sum lines.
  for name in "${names[@]}"; do
    if [ "$name" = kubelet ] && ! grep -qx "$name" "$dir/.commands" 2>/dev/null; then
      (cd "$dir" && go get "k8s.io/kubernetes/cmd/$name@$KUBERNETES_VERSION" >&2) || return 1
      echo "$name" >>"$dir/.commands"
    fi
  done
  log "building ${names[*]} $KUBERNETES_VERSION in one go build (several minutes on 2 cores)"
  rm -rf "$out"; mkdir -p "$out"
  (cd "$dir" && go build -ldflags "$(k8s_ldflags)" -o "$out/" "${pkgs[@]}") || return 1
  for name in "${names[@]}"; do mv "$out/$name" "$bin/$name-$KUBERNETES_VERSION"; done
  rm -rf "$out"
}

build_etcd() {
  local out="$bin/etcd-$ETCD_VERSION" dir="$work/etcd-$ETCD_VERSION"
  [ -x "$out" ] && return
  log "building etcd $ETCD_VERSION"
  rm -rf "$dir"; mkdir -p "$dir"
  (
    cd "$dir"
    go mod init edgeline.local/etcd-tools >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    go build -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
  ) && mv "$out.tmp" "$out"
}

# kwok and helm are ordinary modules: a plain `go install` into a private GOBIN.
build_plain() {
  local name=$1 version=$2 pkg=$3 out="$bin/$1-$2" gobin="$work/gobin-$1-$2"
  [ -x "$out" ] && return
  log "building $name $version"
  mkdir -p "$gobin"
  GOBIN="$gobin" go install -ldflags "-s -w" "$pkg@$version" && mv "$gobin/$name" "$out"
}

# containerd 2.x and its runc shim (one module, one `go install`): static, without btrfs (which
# needs cgo headers).
build_containerd() {
  local names=() pkgs=() name gobin="$work/gobin-containerd-$CONTAINERD_VERSION"
  local pkg=github.com/containerd/containerd/v2
  for name in "$@"; do
    [ -x "$bin/$name-$CONTAINERD_VERSION" ] || { names+=("$name"); pkgs+=("$pkg/cmd/$name@$CONTAINERD_VERSION"); }
  done
  [ ${#names[@]} -gt 0 ] || return 0
  log "building ${names[*]} $CONTAINERD_VERSION"
  mkdir -p "$gobin"
  GOBIN="$gobin" go install -tags no_btrfs \
    -ldflags "-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Revision=edgeline" \
    "${pkgs[@]}" || return 1
  for name in "${names[@]}"; do mv "$gobin/$name" "$bin/$name-$CONTAINERD_VERSION"; done
}

build() {
  case "$1" in
    etcd) build_etcd ;;
    kwok) build_plain kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
    helm) build_plain helm "$HELM_VERSION" "helm.sh/helm/${HELM_VERSION%%.*}/cmd/helm" ;;
    *) log "unknown component: $1"; exit 2 ;;
  esac
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm kubelet containerd containerd-shim-runc-v2)
start=$(date +%s)
# Components of one module are built together (see build_k8s); the others one by one.
k8s=() containerd=()
for c in "${components[@]}"; do
  case "$c" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet) k8s+=("$c") ;;
    containerd|containerd-shim-runc-v2) containerd+=("$c") ;;
    *) build "$c" || { log "FAILED to build $c (see the output above)"; exit 1; } ;;
  esac
done
if [ ${#k8s[@]} -gt 0 ]; then
  build_k8s "${k8s[@]}" || { log "FAILED to build ${k8s[*]} (see the output above)"; exit 1; }
fi
if [ ${#containerd[@]} -gt 0 ]; then
  build_containerd "${containerd[@]}" || { log "FAILED to build ${containerd[*]} (see the output above)"; exit 1; }
fi
log "all built in $(( $(date +%s) - start ))s: ${components[*]} -> $bin"
