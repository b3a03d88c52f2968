#!/usr/bin/env bash
# Set up everything the tests need, then lint, type-check and run the whole suite on the compiled
# build (soak runs excluded: `scripts/soak.sh` runs those), then the proxy-behaviour tests once more
# on the pure-Python fallback. Extra arguments go to the first pytest run and skip the second.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$HOME/.cache/k8s:$PATH"
echo "== ruff"
ruff check service operator tests bench fuzz setup.py
echo "== mypy (the compiled modules must type-check; mypyc trusts the annotations)"
(cd service && mypy cacheproxy)
echo "== pytest (compiled hot path)"
CACHEPROXY_EXPECT_BUILD=compiled pytest "$@"
if [ $# -eq 0 ]; then
  # Proxies started by the tests inherit the variable, so they run pure Python too.
  echo "== pytest, pure-Python fallback (CACHEPROXY_PURE_PYTHON=1)"
  CACHEPROXY_PURE_PYTHON=1 CACHEPROXY_EXPECT_BUILD=pure pytest -q tests/test_compiled.py tests/test_cli.py \
    tests/test_workers.py tests/protocol tests/backends tests/handlers tests/orcas tests/server tests/metrics \
    tests/binary tests/differential tests/reliability
fi
