#!/usr/bin/env bash
# Makes Prometheus, promtool and Alertmanager available to the tests and the demo, from
# Debian's packages `prometheus` and `prometheus-alertmanager`, without installing them:
# the .deb files are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
#   ${EDGELINE_CACHE:-~/.cache/edgeline}/monitoring/<package>/<version>/
# so no maintainer script runs, no system user is created and no service is started.
# Binaries already on PATH are used as they are.
#
# Prints PROMETHEUS=, PROMTOOL= and ALERTMANAGER= lines and records them in
# .../monitoring/paths.env, where edgeline.devenv.monitoring looks for them.
# A second run only checks that the recorded binaries are still there (milliseconds);
# `--refresh` asks apt for the current versions and fetches them when they changed.
# With no package lists at all the newest cached version is used without the network.
#
#   dev/install-monitoring.sh [--refresh]
set -euo pipefail

refresh=false
case "${1:-}" in
  --refresh) refresh=true ;;
  "") ;;
  *) echo "usage: $0 [--refresh]" >&2; exit 2 ;;
esac

cache=${EDGELINE_CACHE:-$HOME/.cache/edgeline}
root="$cache/monitoring"
paths_env="$root/paths.env"
mkdir -p "$root"

log() { printf '[install-monitoring] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

record() {  # prometheus promtool alertmanager
  local tmp="$paths_env.tmp.$$"
  printf 'PROMETHEUS=%s\nPROMTOOL=%s\nALERTMANAGER=%s\n' "$1" "$2" "$3" >"$tmp"
  mv "$tmp" "$paths_env"
  cat "$paths_env"
}

# Recorded by an earlier run and still there: nothing to do.
if ! $refresh && [ -f "$paths_env" ]; then
  ok=true
  while IFS='=' read -r _ path; do [ -x "$path" ] || ok=false; done <"$paths_env"
  if $ok; then cat "$paths_env"; exit 0; fi
fi

# Installed by someone already (Debian names the Alertmanager binary prometheus-alertmanager).
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  am=$(command -v alertmanager || command -v prometheus-alertmanager || true)
  if [ -n "$am" ]; then
    record "$(command -v prometheus)" "$(command -v promtool)" "$am"
    exit 0
  fi
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || die "apt-get and dpkg-deb are needed (Debian or Ubuntu); otherwise put prometheus, promtool and alertmanager on PATH"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else return 1
  fi
}

# The versions apt would install, empty when its package lists do not know a package.
# One apt-cache call for both: each call rebuilds apt's cache in memory (~1 s) on images
# that disable pkgcache.bin, as Debian's container images do.
declare -A candidates=()
read_candidates() {
  local pkg="" line
  candidates=()
  while IFS= read -r line; do
    case "$line" in
      [!\ ]*:) pkg=${line%:} ;;
      *Candidate:*) line=${line##*Candidate: }; [ "$line" = "(none)" ] || candidates[$pkg]=$line ;;
    esac
  done < <(apt-cache policy prometheus prometheus-alertmanager 2>/dev/null)
}
candidate() { printf '%s' "${candidates[$1]:-}"; }

dir_for() { printf '%s/%s/%s' "$root" "$1" "${2//:/_}"; }  # epochs' ':' kept out of paths

newest_cached() {
  local ready
  ready=$(ls -d "$root/$1"/*/.ready 2>/dev/null | sort -V | tail -n 1)
  [ -z "$ready" ] || dirname "$ready"
}

apt_update() {
  log "refreshing apt's package lists (apt-get update)"
  as_root apt-get update -qq >&2 || die "apt-get update failed (it needs root or sudo)"
  read_candidates
}

# Debian's Alertmanager reads its notification templates from the absolute path
# /usr/share/prometheus/alertmanager and refuses to start without them. Rather than
# writing into /usr, the unpacked copy gets that path turned into the relative
# `.usr/share/...` (same length, so the binary stays valid) and a wrapper that runs it
# from the package directory, where `.usr` points at the unpacked `usr`. Absolute
# paths in its arguments are therefore required.
relocate_alertmanager() {  # unpacked package root
  local dir=$1 from=/usr/share/prometheus/alertmanager found
  found=$(perl -0777 -ne "print scalar(() = m{\Q$from\E}g)" "$dir/usr/bin/prometheus-alertmanager")
  if [ "$found" = 0 ]; then
    log "prometheus-alertmanager no longer names $from; using it unpatched"
  else
    perl -0777 -pi -e "s{\Q$from\E}{.${from#/}}g" "$dir/usr/bin/prometheus-alertmanager"
  fi
  ln -s usr "$dir/.usr"
  cat >"$dir/alertmanager" <<'WRAPPER'
#!/bin/sh
# Debian's prometheus-alertmanager, relocated by dev/install-monitoring.sh: it must run
# from this directory to find its templates, so give it absolute paths.
cd "$(dirname "$0")" && exec ./usr/bin/prometheus-alertmanager "$@"
WRAPPER
  chmod +x "$dir/alertmanager"
}

unpack() {  # package version -> unpacked directory
  local pkg=$1 version=$2 dest tmp
  dest=$(dir_for "$pkg" "$version")
  tmp=$(mktemp -d "$root/.download.XXXXXX")
  # As root apt drops to the _apt user for downloads, which cannot write to our private dir.
  local sandbox=()
  [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
  if ! (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$pkg=$version" >&2); then
    rm -rf "$tmp"; return 1
  fi
  dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; return 1; }
  if [ "$pkg" = prometheus-alertmanager ]; then
    relocate_alertmanager "$tmp/root" || { rm -rf "$tmp"; return 1; }
  fi
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$tmp/root" "$dest"
  rm -rf "$tmp"
  touch "$dest/.ready"
  printf '%s' "$dest"
}

resolve() {  # package -> directory holding its unpacked files
  local pkg=$1 version dir
  version=$(candidate "$pkg")
  if [ -n "$version" ] && [ -f "$(dir_for "$pkg" "$version")/.ready" ]; then
    dir_for "$pkg" "$version"; return
  fi
  if [ -z "$version" ]; then
    dir=$(newest_cached "$pkg")
    [ -n "$dir" ] || die "Debian's package lists have no package $pkg"
    printf '%s' "$dir"; return
  fi
  log "fetching $pkg $version"
  if dir=$(unpack "$pkg" "$version"); then printf '%s' "$dir"; return; fi
  # Stale lists name a version the mirror has dropped (after a security update): refresh once.
  apt_update
  version=$(candidate "$pkg")
  [ -n "$version" ] || die "Debian's package lists have no package $pkg"
  log "fetching $pkg $version"
  dir=$(unpack "$pkg" "$version") || {
    dir=$(newest_cached "$pkg")
    [ -n "$dir" ] || die "could not download $pkg $version"
    log "download failed; using the cached $dir"
  }
  printf '%s' "$dir"
}

start=$EPOCHREALTIME
read_candidates
# A fresh machine (or container image) may have no package lists yet.
for pkg in prometheus prometheus-alertmanager; do
  if [ -z "$(candidate "$pkg")" ] && [ -z "$(newest_cached "$pkg")" ]; then apt_update; break; fi
done
prom_dir=$(resolve prometheus)
am_dir=$(resolve prometheus-alertmanager)
prometheus="$prom_dir/usr/bin/prometheus"
promtool="$prom_dir/usr/bin/promtool"
alertmanager="$am_dir/alertmanager"
for b in "$prometheus" "$promtool" "$alertmanager"; do
  [ -x "$b" ] || die "$b is missing from the unpacked package"
done
record "$prometheus" "$promtool" "$alertmanager"
log "ready in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')s"
