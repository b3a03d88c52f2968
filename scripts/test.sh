#!/usr/bin/env bash
# Set up everything the tests need, then lint and run the whole suite (soak runs excluded:
# `scripts/soak.sh` runs those). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$HOME/.cache/k8s-1.20.2:$PATH"
echo "== ruff"
ruff check service operator tests bench
echo "== pytest"
pytest "$@"
