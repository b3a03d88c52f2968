#!/bin/sh
# Compile bench/mcload.c into ~/.cache/cacheproxy-bench/mcload, only when the source (or this
# script) changed since the last build: the binary is keyed by the source's SHA-256.
# Prints the binary's path. Needs gcc (Debian: build-essential).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache="${CACHEPROXY_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cacheproxy-bench}"
bin="$cache/mcload"
stamp="$cache/mcload.sha256"
want=$(cat "$here/mcload.c" "$0" | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    mkdir -p "$cache"
    gcc -O2 -Wall -pthread -o "$bin.tmp" "$here/mcload.c" -lm
    mv "$bin.tmp" "$bin"
    echo "$want" > "$stamp"
    echo "built $bin" >&2
fi
echo "$bin"
