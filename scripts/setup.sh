#!/usr/bin/env bash
# Installs what cacheproxy needs on a Debian/Ubuntu machine and a virtualenv in .venv.
#   scripts/setup.sh          runtime only (memcached + the proxy)
#   scripts/setup.sh --test   everything the test suite uses (twemproxy, libmemcached tools,
#                             prometheus, podman, helm, and the test node: Kubernetes, containerd and
#                             CoreDNS built from their Go modules into ~/.cache/k8s, Debian's runc and
#                             CNI plugins)
# Idempotent: what is installed or cached (under ~/.cache) is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

apt_pkgs=(memcached gcc)  # gcc: the compiled hot path (setup.py, mypyc); without it, pure Python
# ... and Python's headers: Debian's python3 keeps them in python3-dev.
if ! python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  apt_pkgs+=(python3-dev)
fi
[ "$want_test" = --test ] && apt_pkgs+=(nutcracker libmemcached-tools prometheus podman runc mmdebstrap curl openssl)
# the test node (scripts/k8s/start-node.sh): CNI plugins, kube-proxy's tools, libc6-dev for the static pause
[ "$want_test" = --test ] && apt_pkgs+=(containernetworking-plugins iptables conntrack libc6-dev)
# sasl2-bin: saslpasswd2 builds the sasldb that the SASL differential tests give memcached -S
[ "$want_test" = --test ] && apt_pkgs+=(sasl2-bin)
# libmemcached-dev, zlib1g-dev: pylibmc (a client driver in tests/clients) builds against them
[ "$want_test" = --test ] && apt_pkgs+=(libmemcached-dev zlib1g-dev)
# libevent-dev, make, xz-utils: bench/build.sh memcached-proxy builds memcached with its proxy
[ "$want_test" = --test ] && apt_pkgs+=(libevent-dev make xz-utils)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# memcached from Debian starts a system service on 11211; our run command wants that port.
if [ -d /run/systemd/system ] && systemctl is-active -q memcached 2>/dev/null; then
  $SUDO systemctl disable --now memcached >/dev/null 2>&1 || true
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
extras="operator"; [ "$want_test" = --test ] && extras="operator,test"
# `pip install -e` compiles the hot modules in place with mypyc (~50 s on 2 cores; see setup.py), so
# it runs only when the packaging (pyproject.toml, setup.py) changed since the last install with these
# extras, or the compiled build is missing or stale (a hot .py edited since).
stamp=".venv/.installed-${extras}"
want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! env -u CACHEPROXY_PURE_PYTHON .venv/bin/python -c \
    'import sys, cacheproxy.compiled as c; sys.exit(not c.COMPILED)' 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  echo "$want" > "$stamp"
fi
env -u CACHEPROXY_PURE_PYTHON .venv/bin/python -m cacheproxy --version

if [ "$want_test" = --test ]; then
  # Kubernetes for the test node and for the operator tests' kubelet-less control plane (the same
  # binaries; cached: seconds when built; ~25 min cold on 2 cores, see README)
  PATH="$PATH:/usr/local/go/bin" bash scripts/k8s/build.sh
  [ -x "$HOME/.cache/k8s/helm" ] || bash scripts/k8s/get-helm.sh
  bash bench/build.sh >/dev/null 2>&1 || true
  # pylibmc (built against libmemcached-dev): the ring's golden test against a real client library.
  .venv/bin/python -c 'import pylibmc' 2>/dev/null || .venv/bin/python -m pip install -q pylibmc \
    || echo "setup: pylibmc did not install; tests/ring skips its pylibmc comparison"
fi
echo "setup: done"
