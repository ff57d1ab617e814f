#!/usr/bin/env bash
# Builds Edgeline's three images, the operator, the edge runtime and the pull site's agent
# (images/*/Containerfile), with
# podman on a base made here from Debian packages (no image registry is reachable on this kind
# of machine), and writes what others need to find them:
#
#   ~/.cache/edgeline/images/<name>-<version>-<key>.oci.tar   OCI archives (skopeo copy oci-archive:...)
#   .edgeline/images.env                                      OPERATOR_IMAGE=, OPERATOR_IMAGE_ARCHIVE=,
#                                                             RUNTIME_IMAGE=, RUNTIME_IMAGE_ARCHIVE=, ...
#
# Tags: ghcr.io/edgeline/<name>:<version> (the chart's and the renderer's defaults) and
# :<version>-<git short sha>, the sha of the last commit that changed the image's inputs (with
# -dirty when the working tree differs from it); the OCI labels name the same commit.
#
# Cached: the base image is keyed by the Debian suite and its package list (a tar in the cache
# dir, imported again if podman's storage was wiped); an image by the hash of everything that
# goes into it (Containerfile, pyproject.toml, README.md, operator/, base, that commit). A second
# run with nothing changed only checks (about a second).
#
#   dev/build-images.sh                     build all three (amd64, the machine's architecture)
#   dev/build-images.sh --push HOST:PORT    build, then push them to HOST:PORT/edgeline/<name>
#   dev/build-images.sh --arch arm64        the edge runtime for arm64 (needs qemu-user binfmt)
set -euo pipefail
shopt -s inherit_errexit
# One compound command, read whole before it runs: a checkout that changes this file mid-build
# (a merge, a pull) does not change the build under way.
{

push=""
arch=$(dpkg --print-architecture)
host_arch=$arch
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=${2:?--push needs HOST:PORT}; shift 2 ;;
    --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    *) echo "usage: $0 [--push HOST:PORT] [--arch amd64|arm64]" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cache=${EDGELINE_CACHE:-$HOME/.cache/edgeline}
out="$cache/images"
mkdir -p "$out" .edgeline
log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [ "$arch" != "$host_arch" ]; then
  bash dev/install-container-tools.sh --arm64
else
  bash dev/install-container-tools.sh
fi
source <(bash dev/install-container-tools.sh --env)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
[ -n "$version" ] || die "no version in pyproject.toml"
registry_prefix=${EDGELINE_IMAGE_PREFIX:-ghcr.io/edgeline}
source_url=${EDGELINE_IMAGE_SOURCE:-https://github.com/edgeline/edgeline}

# --- the base: Debian's python3 (and, for the build stage, its venv module) from mmdebstrap --------
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=${EDGELINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Trimmed like the slim images: no manuals, docs (copyright notices stay) or translations.
debstrap_opts=(
  --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
)
# libstdc++6: the manylinux wheels (onnx, onnxruntime) link to it, as they may (PEP 600).
base_packages_runtime="python3,libstdc++6,ca-certificates"
base_packages_build="python3,python3-venv,libstdc++6,ca-certificates"

base_image() {  # kind packages -> prints the image reference
  local kind=$1 packages=$2 key ref tar
  key=$(printf '%s\n' "$suite" "$arch" "$mirror" "$packages" "${debstrap_opts[@]}" | sha256sum | cut -c1-12)
  ref="localhost/edgeline/base-$kind:$suite-$arch-$key"
  tar="$out/base-$kind-$suite-$arch-$key.tar"
  if podman image exists "$ref"; then echo "$ref"; return; fi
  if [ ! -s "$tar" ]; then
    log "making the $kind base ($suite, $arch: $packages) with mmdebstrap"
    local started=$SECONDS
    local chroot_arch=()
    [ "$arch" = "$host_arch" ] || chroot_arch=(--arch="$arch")
    # mmdebstrap picks the output format from the name: keep .tar at the end.
    if ! mmdebstrap "${chroot_arch[@]}" "${debstrap_opts[@]}" --include="$packages" \
        "$suite" "$tar.partial.tar" "$mirror" >"$tar.log" 2>&1; then
      tail -20 "$tar.log" >&2; die "mmdebstrap failed (whole log: $tar.log)"
    fi
    mv "$tar.partial.tar" "$tar"
    log "base $kind: $((SECONDS - started)) s"
  fi
  podman import --quiet --arch "$arch" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/usr/bin/python3"]' \
    --message "Debian $suite ($packages) from mmdebstrap, by dev/build-images.sh" \
    "$tar" "$ref" >/dev/null
  echo "$ref"
}

# --- the images --------------------------------------------------------------------------------------
# An image's revision is the last commit that changed what it is built from, so a commit that
# touches only docs, tests or charts builds nothing new: its tag, labels and cache key stay.
image_paths() { echo pyproject.toml README.md operator "images/$1"; }
inputs() {  # the files an image is built from, as the build context sees them
  # shellcheck disable=SC2046
  git ls-files --cached --others --exclude-standard -- $(image_paths "$1") \
    | while read -r f; do [ -f "$f" ] && echo "$f"; done | LC_ALL=C sort
}
# -dirty: what is built differs from the commit the labels name.
# shellcheck disable=SC2046
dirty() { [ -n "$(git status --porcelain -- $(image_paths "$1") 2>/dev/null)" ]; }

build_image() {  # name base build_base -> sets IMAGE_REF IMAGE_ARCHIVE
  local name=$1 base=$2 build_base=$3 key tag started revision short created epoch
  # shellcheck disable=SC2046
  read -r revision short epoch < <(git log -1 --format='%H %h %ct' -- $(image_paths "$name") 2>/dev/null \
                                   || echo "unknown unknown $(date +%s)")
  created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
  tag="$version-$short"
  dirty "$name" && tag="$tag-dirty"
  [ "$arch" = "$host_arch" ] || tag="$tag-$arch"
  key=$( { podman image inspect --format '{{.Id}}' "$base" "$build_base"
           echo "$arch $tag $revision $created $source_url"
           inputs "$name" | xargs -d '\n' sha256sum; } | sha256sum | cut -c1-16)
  local repo_ref="$registry_prefix/$name"
  local version_ref="$repo_ref:$version"
  [ "$arch" = "$host_arch" ] || version_ref="$repo_ref:$version-$arch"
  IMAGE_REF="$repo_ref:$tag"
  IMAGE_ARCHIVE="$out/$name-$tag-$key.oci.tar"
  if podman image exists "localhost/edgeline/$name:key-$key" && [ -s "$IMAGE_ARCHIVE" ]; then
    podman tag "localhost/edgeline/$name:key-$key" "$version_ref" "$IMAGE_REF"
    log "$name: up to date ($IMAGE_REF)"
    return
  fi
  started=$SECONDS
  # Only the files the image is built from go into the context (not .venv, .git or caches).
  build_context=$(mktemp -d "$out/context.XXXXXX")
  trap 'rm -rf "$build_context"' EXIT
  inputs "$name" | tar -cf - -T - | tar -xf - -C "$build_context"
  log "$name: building $IMAGE_REF"
  # The labels again as --label: buildah 1.28 takes a cached LABEL step even when the ARG in it
  # changed (an image of the next commit kept the previous revision), and --label bypasses that.
  podman build --quiet --layers --pull=never --network=host --arch "$arch" \
    --build-arg BASE="$base" --build-arg BUILD_BASE="$build_base" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg CREATED="$created" --build-arg SOURCE="$source_url" \
    "${pip_ca[@]}" \
    --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.created=$created" --label "org.opencontainers.image.source=$source_url" \
    -f "images/$name/Containerfile" \
    -t "$IMAGE_REF" -t "$version_ref" -t "localhost/edgeline/$name:key-$key" \
    "$build_context" >/dev/null
  rm -rf "$build_context"
  # Older archives of this image go, except the newest few: other checkouts (worktrees) of the
  # repository share this cache and may still point at theirs.
  # (On a new machine there is none yet: ls fails, and pipefail must not end the build.)
  { ls -t "$out/$name-$version"-*.oci.tar 2>/dev/null || true; } | tail -n +4 | xargs -r rm -f
  podman save --quiet --format oci-archive -o "$IMAGE_ARCHIVE.tmp" "$IMAGE_REF"
  mv "$IMAGE_ARCHIVE.tmp" "$IMAGE_ARCHIVE"
  log "$name: built in $((SECONDS - started)) s, $(size_of "$IMAGE_REF")"
}

size_of() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# pip inside the build trusts what pip here trusts (a TLS-inspecting proxy's CA, say); a build
# secret, so it is in no layer.
pip_ca=()
for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$ca" ] && [ -s "$ca" ]; then pip_ca=(--secret "id=pip-ca,src=$ca"); break; fi
done

started_all=$SECONDS
base=$(base_image runtime "$base_packages_runtime")
build_base=$(base_image build "$base_packages_build")

if [ "$arch" = "$host_arch" ]; then
  build_image operator "$base" "$build_base"
  operator_ref=$IMAGE_REF operator_archive=$IMAGE_ARCHIVE
  build_image agent "$base" "$build_base"
  agent_ref=$IMAGE_REF agent_archive=$IMAGE_ARCHIVE
fi
build_image edge-runtime "$base" "$build_base"
runtime_ref=$IMAGE_REF runtime_archive=$IMAGE_ARCHIVE

if [ "$arch" = "$host_arch" ]; then
  env_file=.edgeline/images.env
  cat >"$env_file.tmp" <<EOF
# Written by dev/build-images.sh ($(date -u +%Y-%m-%dT%H:%M:%SZ)). The images are also tagged
# $registry_prefix/<name>:$version, the chart's and the renderer's defaults.
IMAGES_VERSION=$version
OPERATOR_IMAGE=$operator_ref
OPERATOR_IMAGE_ARCHIVE=$operator_archive
OPERATOR_IMAGE_SIZE_BYTES=$(podman image inspect --format '{{.Size}}' "$operator_ref")
RUNTIME_IMAGE=$runtime_ref
RUNTIME_IMAGE_ARCHIVE=$runtime_archive
RUNTIME_IMAGE_SIZE_BYTES=$(podman image inspect --format '{{.Size}}' "$runtime_ref")
AGENT_IMAGE=$agent_ref
AGENT_IMAGE_ARCHIVE=$agent_archive
AGENT_IMAGE_SIZE_BYTES=$(podman image inspect --format '{{.Size}}' "$agent_ref")
EOF
  mv "$env_file.tmp" "$env_file"
  log "operator $(size_of "$operator_ref"), edge-runtime $(size_of "$runtime_ref"), agent $(size_of "$agent_ref");" \
      "$((SECONDS - started_all)) s in all"
  log "wrote $env_file"
else
  echo "RUNTIME_IMAGE_$arch=$runtime_ref" >".edgeline/images-$arch.env"
  echo "RUNTIME_IMAGE_${arch}_ARCHIVE=$runtime_archive" >>".edgeline/images-$arch.env"
fi

# --- publishing --------------------------------------------------------------------------------------
if [ -n "$push" ]; then
  tls=()
  case "${push%%/*}" in
    # Only a registry on this machine may be plain HTTP (or self-signed).
    localhost|localhost:*|127.*|\[::1\]|\[::1\]:*) tls=(--dest-tls-verify=false) ;;
  esac
  copy() {  # archive destination
    log "pushing docker://$2"
    skopeo copy --quiet "${tls[@]}" "oci-archive:$1" "docker://$2"
  }
  if [ "$arch" = "$host_arch" ]; then
    copy "$operator_archive" "$push/edgeline/operator:$version"
    copy "$operator_archive" "$push/edgeline/operator:${operator_ref##*:}"
    copy "$runtime_archive" "$push/edgeline/edge-runtime:$version"
    copy "$agent_archive" "$push/edgeline/agent:$version"
    copy "$agent_archive" "$push/edgeline/agent:${agent_ref##*:}"
  fi
  copy "$runtime_archive" "$push/edgeline/edge-runtime:${runtime_ref##*:}"
fi
exit 0
}
