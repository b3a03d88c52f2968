#!/bin/sh
# Build a bench tool into ~/.cache/cacheproxy-bench and print its path.
#   bench/build.sh [mcload|passthrough]   compile bench/NAME.c into .../NAME, only when the source
#                                         (or this script) changed: the binary is keyed by the
#                                         source's SHA-256. Needs gcc (Debian: build-essential).
#   bench/build.sh memcached-proxy        memcached built with its proxy (--enable-proxy) into
#                                         .../memcached-proxy/memcached, only when missing or the
#                                         pinned release changed. Debian's memcached package lacks the proxy;
#                                         the source is Debian's (apt-get source, the release pinned
#                                         below, its tarball's SHA-256 checked), which carries
#                                         memcached's vendored Lua 5.4, mcmc and routelib. Needs apt,
#                                         gcc, make, xz-utils and libevent-dev; ~1 minute on 2 cores.
set -eu
name="${1:-mcload}"
here=$(cd "$(dirname "$0")" && pwd)
cache="${CACHEPROXY_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cacheproxy-bench}"

# memcached-proxy: the Debian suite whose source package has this upstream release.
MEMCACHED_VERSION=1.6.38
MEMCACHED_SUITE=trixie
MEMCACHED_SHA256=074076ab3e889e16e763c6a3e5cadacc6696979dbb8c473bbf871d498b19b1a0

# The Debian archive this machine's apt already uses (its "main" index that is not the security one).
debian_archive() {
    apt-get indextargets --format '$(URI)' 2>/dev/null \
        | sed -n 's#^\(.*\)/dists/[^/]*/main/binary-[^/]*/Packages.*$#\1#p' \
        | grep -v -- '-security' | head -n 1
}

build_memcached_proxy() {
    dest="$cache/memcached-proxy"
    bin="$dest/memcached"
    stamp="$dest/memcached.build"
    want="$MEMCACHED_VERSION $MEMCACHED_SHA256 --enable-proxy"
    if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "$bin"
        return
    fi
    if [ ! -f /usr/include/event2/event.h ]; then
        echo "memcached-proxy needs libevent's headers: apt-get install libevent-dev" >&2
        exit 1
    fi
    archive="${CACHEPROXY_DEBIAN_ARCHIVE:-$(debian_archive)}"
    if [ -z "$archive" ]; then
        echo "memcached-proxy: no Debian archive in apt's sources (set CACHEPROXY_DEBIAN_ARCHIVE)" >&2
        exit 1
    fi
    mkdir -p "$dest"
    work=$(mktemp -d "$dest/build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # A private apt state: the machine's own source lists and package cache are left alone.
    mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $archive $MEMCACHED_SUITE main" \
        > "$work/apt/sources.list"
    apt_opts="-o Dir::Etc::SourceList=$work/apt/sources.list -o Dir::Etc::SourceParts=/dev/null
              -o Dir::State::Lists=$work/apt/lists -o Dir::Cache=$work/apt/cache -o APT::Sandbox::User=root"
    # shellcheck disable=SC2086
    apt-get $apt_opts -qq update >&2
    # shellcheck disable=SC2086
    (cd "$work" && apt-get $apt_opts -qq source --download-only "memcached/$MEMCACHED_SUITE" >&2)
    tarball="$work/memcached_$MEMCACHED_VERSION.orig.tar.xz"
    if [ ! -f "$tarball" ]; then
        echo "memcached-proxy: $MEMCACHED_SUITE no longer has memcached $MEMCACHED_VERSION:" \
             "update MEMCACHED_VERSION and MEMCACHED_SHA256 in $0" >&2
        exit 1
    fi
    if [ "$(sha256sum "$tarball" | cut -d' ' -f1)" != "$MEMCACHED_SHA256" ]; then
        echo "memcached-proxy: $tarball does not have the pinned SHA-256" >&2
        exit 1
    fi
    tar -xJf "$tarball" -C "$work"
    src="$work/memcached-$MEMCACHED_VERSION"
    echo "building memcached $MEMCACHED_VERSION --enable-proxy (log: $dest/build.log)" >&2
    if ! (cd "$src" && nice -n 10 ./configure --enable-proxy && nice -n 10 make -j"$(nproc)") > "$dest/build.log" 2>&1; then
        tail -n 20 "$dest/build.log" >&2
        exit 1
    fi
    "$src/memcached" -h | grep -q proxy_config  # the proxy really is in
    cp "$src/memcached" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    echo "$want" > "$stamp"
    echo "built $bin" >&2
    echo "$bin"
}

if [ "$name" = memcached-proxy ]; then
    build_memcached_proxy
    exit 0
fi

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
