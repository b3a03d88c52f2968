#!/usr/bin/env bash
# Long reliability runs, kept out of the default test run.
#
#   scripts/soak.sh                 10,000 connections for 10 minutes at 0.5 req/s each:
#                                   RSS slope (MiB/min), fds/threads/connections back to baseline
#   scripts/soak.sh --seconds 120   a shorter soak
#   scripts/soak.sh --faults        the backend-fault tests at 10,000 connections
#                                   (9,900 for Rend's one-backend-connection-per-client layout)
# Needs gcc (bench/build.sh compiles the C load generator) and memcached.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # what scripts/setup.sh installed
if [ "${1:-}" = "--faults" ]; then
  shift
  exec env CACHEPROXY_FAULT_CONNS=10000 "$PY" -m pytest -q -p no:cacheprovider \
    tests/reliability/test_backend_faults.py "$@"
fi
exec "$PY" -m tests.reliability.soak "$@"
