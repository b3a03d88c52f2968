#!/usr/bin/env bash
# Set up, then run a real memcached (127.0.0.1:11311) and the proxy in front of it on
# 127.0.0.1:11211, admin (/metrics, /healthz, /readyz) on 127.0.0.1:9150. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MC_ARGS=(-l 127.0.0.1 -p 11311 -U 0 -m "${MEMCACHED_MB:-256}" -I "${MAX_ITEM_SIZE:-1m}")
[ "$(id -u)" = 0 ] && MC_ARGS+=(-u root)
memcached "${MC_ARGS[@]}" &
mc_pid=$!
trap 'kill $mc_pid 2>/dev/null; wait $mc_pid 2>/dev/null' EXIT
exec_args=(--listen 127.0.0.1:11211 --l1 127.0.0.1:11311 --admin 127.0.0.1:9150 "$@")
echo "memcached pid $mc_pid on 127.0.0.1:11311; proxy on 127.0.0.1:11211, admin http://127.0.0.1:9150/metrics"
.venv/bin/cacheproxy "${exec_args[@]}"
