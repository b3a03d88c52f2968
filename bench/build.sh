#!/bin/sh
# Compile bench/NAME.c (mcload, the default, or passthrough) into ~/.cache/cacheproxy-bench/NAME,
# only when the source (or this script) changed since the last build: the binary is keyed by the
# source's SHA-256. Prints the binary's path. Needs gcc (Debian: build-essential).
set -eu
name="${1:-mcload}"
here=$(cd "$(dirname "$0")" && pwd)
cache="${CACHEPROXY_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cacheproxy-bench}"
bin="$cache/$name"
stamp="$cache/$name.sha256"
want=$(cat "$here/$name.c" "$0" | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    mkdir -p "$cache"
    gcc -O2 -Wall -pthread -o "$bin.tmp" "$here/$name.c" -lm
    mv "$bin.tmp" "$bin"
    echo "$want" > "$stamp"
    echo "built $bin" >&2
fi
echo "$bin"
