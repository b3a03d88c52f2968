#!/usr/bin/env bash
# Check the alert rules with promtool (Debian package `prometheus`): syntax, then the unit tests.
# Usage: bash scripts/prometheus/check-rules.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v promtool >/dev/null || { echo "promtool missing: apt-get install prometheus" >&2; exit 2; }
promtool check rules "$ROOT/charts/cacheproxy/alerts/cacheproxy-rules.yaml"
cd "$ROOT/tests/monitoring" && promtool test rules alerts-test.yaml
