#!/usr/bin/env bash
# Installs from Debian what the real nodes of `edgeline dev up` need besides the binaries
# that dev/build-tools.sh builds (kubelet, containerd, containerd-shim-runc-v2):
#   runc                            the OCI runtime containerd's shim calls
#   containernetworking-plugins     CNI bridge, host-local, loopback
#   docker-registry                 the local OCI registry (CNCF distribution)
#   skopeo                          pushes OCI archives and layouts into it
#   iptables                        the DNAT rule that stands in for kube-proxy (docs/decisions.md)
#   gcc, libc6-dev                  the static sandbox ("pause") and hello binaries
#   mount, util-linux, iproute2     unmounting, bridges
# Idempotent: does nothing when everything is there. Needs root (apt-get).
set -euo pipefail

log() { printf '[install-node-tools] %s\n' "$*" >&2; }

# command -> Debian package
declare -A wanted=(
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [iptables]=iptables
  [gcc]=gcc
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
  [ip]=iproute2
  [umount]=mount
  [nsenter]=util-linux
)

missing=()
for cmd in "${!wanted[@]}"; do
  if [[ $cmd == /* ]]; then
    [ -e "$cmd" ] && continue
    # libc.a lives under the multiarch triplet of the machine.
    if [[ $cmd == *libc.a ]] && compgen -G "/usr/lib/*-linux-gnu/libc.a" >/dev/null; then continue; fi
  else
    command -v "$cmd" >/dev/null && continue
  fi
  missing+=("${wanted[$cmd]}")
done

if [ ${#missing[@]} -eq 0 ]; then
  log "all present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  log "missing: ${missing[*]}; run this script as root (it uses apt-get)"
  exit 1
fi
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"; }
if ! apt_install "${missing[@]}"; then
  apt-get -o DPkg::Lock::Timeout=600 update
  apt_install "${missing[@]}"
fi
# docker-registry's package starts a system-wide service on :5000 where an init system
# runs; the local environment starts its own registry per environment instead.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry || true
fi
log "done"
