#!/usr/bin/env bash
# Run Debian's Prometheus on 127.0.0.1 against a local proxy's admin port, with the chart's alert rules
# and the labels the dashboard expects. For poking at the dashboard queries by hand; Ctrl-C stops it.
# Usage: bash scripts/prometheus/run-local.sh ADMIN_ADDR [LISTEN_ADDR]
#   e.g. bash scripts/prometheus/run-local.sh 127.0.0.1:9150 127.0.0.1:9090
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${1:?usage: run-local.sh ADMIN_ADDR [LISTEN_ADDR]}; LISTEN=${2:-127.0.0.1:9090}
W=$(mktemp -d /tmp/cacheproxy-prometheus-XXXX)
cat > "$W/prometheus.yml" <<YML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$ROOT/charts/cacheproxy/alerts/cacheproxy-rules.yaml"]
scrape_configs:
  - job_name: cacheproxy
    static_configs:
      - targets: ["$TARGET"]
        labels: {namespace: local, pod: local-0, app_kubernetes_io_instance: local}
YML
echo "prometheus on http://$LISTEN (data in $W)"
exec prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/data" --web.listen-address="$LISTEN"
