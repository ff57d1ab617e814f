#!/usr/bin/env bash
# Installs from Debian what building and running Edgeline's images needs: podman, buildah, runc,
# skopeo, umoci and mmdebstrap (the base image is made locally from Debian packages: no image
# registry is reachable here). With --arm64 also qemu-user-static and binfmt-support, for the
# arm64 runtime image.
#
# It writes no system configuration: the project's container settings live in
# images/containers.conf (runc, cgroupfs, host network, ulimits within the hard limits) and in
#   ${EDGELINE_CACHE:-~/.cache/edgeline}/containers/storage.conf
# (vfs driver, storage under that cache, apart from the machine's own /var/lib/containers).
# dev/build-images.sh and the tests point podman, buildah and skopeo at both through
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (`source <(dev/install-container-tools.sh --env)`).
#
# Idempotent; when everything is there it only checks (a few milliseconds, no apt).
#
#   dev/install-container-tools.sh [--arm64] [--env]
set -euo pipefail

arm64=false
print_env=false
for arg in "$@"; do
  case "$arg" in
    --arm64) arm64=true ;;
    --env) print_env=true ;;
    *) echo "usage: $0 [--arm64] [--env]" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EDGELINE_CACHE:-$HOME/.cache/edgeline}
conf_dir="$cache/containers"
log() { printf '[install-container-tools] %s\n' "$*" >&2; }

# command -> Debian package
declare -A wanted=(
  [podman]=podman [buildah]=buildah [runc]=runc [skopeo]=skopeo [umoci]=umoci [mmdebstrap]=mmdebstrap
  # mmdebstrap unpacks with these; uidmap's newuidmap is not needed as root.
  [zstd]=zstd
)
if $arm64; then
  wanted[qemu-aarch64-static]=qemu-user-static
  wanted[update-binfmts]=binfmt-support
  # mmdebstrap checks with it that the foreign architecture's binaries run.
  wanted[arch-test]=arch-test
fi

missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${wanted[$cmd]}")
done
# Debian's mmdebstrap checks the archive's signatures with these keys.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
# Certificates for HTTPS from inside builds are not needed on the host, but pip in the tests is.

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${missing[*]}: run this script as root (apt-get install)"; exit 1
  fi
  log "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    # --no-install-recommends: podman recommends crun-era helpers (fuse-overlayfs, slirp4netns) that this
    # machine does not use; runc is chosen explicitly (crun refuses hybrid cgroups here).
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
  }
  if ! apt_install "${missing[@]}" runc; then
    log "apt-get install failed; updating the package lists once and retrying"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt_install "${missing[@]}" runc
  fi
fi

if $arm64 && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  # binfmt_misc may not be mounted in a container; the error says so and the caller decides.
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64
fi

mkdir -p "$conf_dir"
storage_conf="$conf_dir/storage.conf"
want_storage=$(cat <<EOF
# Written by dev/install-container-tools.sh: Edgeline's image storage, apart from the machine's own.
[storage]
driver = "vfs"
graphroot = "$conf_dir/storage"
runroot = "$conf_dir/run"
EOF
)
if [ ! -f "$storage_conf" ] || [ "$(cat "$storage_conf")" != "$want_storage" ]; then
  printf '%s\n' "$want_storage" >"$storage_conf"
fi

if $print_env; then
  printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\n' \
    "$repo/images/containers.conf" "$storage_conf"
fi
