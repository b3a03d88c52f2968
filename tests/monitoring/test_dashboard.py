"""The Grafana dashboard is generated, complete, and filters on the namespace and CacheProxy variables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "cacheproxy" / "dashboards" / "cacheproxy.json"
GENERATOR = REPO / "scripts" / "prometheus" / "build_dashboard.py"

# What an on-call engineer must be able to see (issue 5), by the metric each panel needs.
REQUIRED_METRICS = {
    "cacheproxy_requests_total", "cacheproxy_cache_lookups_total",
    "cacheproxy_request_duration_seconds_bucket", "cacheproxy_client_connections",
    "cacheproxy_client_connections_max", "cacheproxy_backend_connections", "cacheproxy_errors_total",
    "cacheproxy_backend_errors_total", "cacheproxy_bytes_received_total", "cacheproxy_bytes_sent_total",
    "cacheproxy_backend_up", "kube_pod_status_ready", "kube_pod_container_status_restarts_total",
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_committed_dashboard_equals_the_generator_output() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_dashboard_has_the_datasource_namespace_and_cacheproxy_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "namespace" in variables["namespace"]["definition"]
    assert "app_kubernetes_io_instance" in variables["cacheproxy"]["definition"]
    assert "$namespace" in variables["cacheproxy"]["definition"]


def test_every_panel_uses_the_datasource_variable_and_both_filters() -> None:
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
            assert "$cacheproxy" in target["expr"], panel["title"]


def test_dashboard_covers_every_required_metric() -> None:
    used = {name for expr in expressions() for name in re.findall(r"\b(?:cacheproxy|kube)_\w+", expr)}
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


def test_panel_ids_are_unique_and_the_grid_does_not_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine
