#!/usr/bin/env bash
# Builds dev/luahealth (Argo CD's Lua interpreter, gopher-lua, as a command) into
# ${EDGELINE_CACHE:-~/.cache/edgeline}/bin/luahealth-<gopher-lua version>-<source hash>
# and prints the binary's path. A binary already in the cache is not rebuilt; a change
# to main.go or go.mod gives a new name, so a stale build is never used. (go.sum is left
# out of the hash: it only records checksums of what go.mod names, and -mod=mod may add to it.)
#
#   dev/build-luahealth.sh        -> /root/.cache/edgeline/bin/luahealth-v1.1.1-0123abcd
set -euo pipefail

src=$(cd "$(dirname "$0")/luahealth" && pwd)
cache=${EDGELINE_CACHE:-$HOME/.cache/edgeline}
bin="$cache/bin"

log() { printf '[build-luahealth] %s\n' "$*" >&2; }

lua_version=$(awk '$1 == "github.com/yuin/gopher-lua" {print $2}' "$src/go.mod")
[ -n "$lua_version" ] || { log "no github.com/yuin/gopher-lua requirement in $src/go.mod"; exit 1; }
hash=$(cd "$src" && cat main.go go.mod | sha256sum | cut -c1-8)
out="$bin/luahealth-$lua_version-$hash"

if [ -x "$out" ]; then
  printf '%s\n' "$out"
  exit 0
fi

command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || {
  log "Go is not installed; it is needed to build luahealth"; exit 1; }
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
# -mod=mod: go.sum may be completed from the module proxy; local: never fetch another Go.
export GOFLAGS="-mod=mod -buildvcs=false -trimpath" GOTOOLCHAIN=local CGO_ENABLED=0

mkdir -p "$bin"
start=$(date +%s)
log "building luahealth with gopher-lua $lua_version"
(cd "$src" && go build -ldflags "-s -w" -o "$out.tmp.$$" .) || { rm -f "$out.tmp.$$"; log "FAILED (see above)"; exit 1; }
mv "$out.tmp.$$" "$out"
log "built in $(( $(date +%s) - start ))s -> $out"
printf '%s\n' "$out"
