"""The Grafana dashboard is generated, complete, filters on the namespace and CacheProxy variables, and
queries only metrics and labels the proxy exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from cacheproxy.metrics.collector import StatsCollector
from cacheproxy.metrics.stats import Stats

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
# What an SRE watches while the ring changes (the "Ring changes" row): the config reaching each pod,
# the warm-up, answers for members that are away, the orphan sweep.
RING_CHANGE_METRICS = {
    "cacheproxy_ring_generation", "cacheproxy_ring_swept_generation",
    "cacheproxy_config_updates_total", "cacheproxy_config_reloads_total",
    "cacheproxy_ring_warmup_total", "cacheproxy_ring_owner_down_total", "cacheproxy_ring_waits_total",
    "cacheproxy_config_watch_up", "cacheproxy_config_watch_reconnects_total", "cacheproxy_config_watch_events_total",
}
RULES = REPO / "charts" / "cacheproxy" / "alerts" / "cacheproxy-rules.yaml"
# Labels every scraped series carries (docs/monitoring.md), histograms' le, and kube-state-metrics' condition.
OTHER_LABELS = {"namespace", "pod", "app_kubernetes_io_instance", "job", "instance", "le", "condition"}
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exported() -> dict[str, set[str]]:
    """Every series name the proxy's /metrics can carry, with its labels (from the collector itself)."""
    names: dict[str, set[str]] = {}
    for family in StatsCollector(Stats().snapshot).collect():
        labels = set(getattr(family, "_labelnames", ()))  # empty families have no samples to read them from
        for suffix in SUFFIXES[family.type]:
            names.setdefault(family.name + suffix, set()).update(labels)
    return names


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
        if panel["type"] == "row":
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
            assert "$cacheproxy" in target["expr"], panel["title"]


def test_dashboard_covers_every_required_metric() -> None:
    used = {name for expr in expressions() for name in re.findall(r"\b(?:cacheproxy|kube)_\w+", expr)}
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


def test_the_ring_changes_row_holds_the_ring_change_panels() -> None:
    panels = dashboard()["panels"]
    rows = [i for i, panel in enumerate(panels) if panel["type"] == "row"]
    assert [panels[i]["title"] for i in rows] == ["Ring changes"]
    below = panels[rows[0] + 1:]
    assert below and all(panel["title"].startswith("Ring: ") for panel in below)
    used = {name for panel in below for target in panel["targets"]
            for name in re.findall(r"\bcacheproxy_\w+", target["expr"])}
    assert used >= RING_CHANGE_METRICS, RING_CHANGE_METRICS - used


def test_every_query_and_rule_names_metrics_and_labels_the_proxy_exports() -> None:
    """A misspelt metric or label returns no data, silently: each cacheproxy_ name in a query or an alert
    must be one the collector yields, and each label it groups, joins or filters on one of those
    metrics' labels or a label every series carries."""
    names = exported()
    assert {"cacheproxy_ring_waits_total", "cacheproxy_config_watch_up"} <= set(names)
    for expr in expressions() + rule_expressions():
        metrics = set(re.findall(r"\bcacheproxy_\w+", expr))
        assert metrics <= set(names), (expr, metrics - set(names))
        known = OTHER_LABELS.union(*(names[m] for m in metrics))
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            grouped = {label.strip() for label in clause.split(",") if label.strip()}
            assert grouped <= known, (expr, grouped - known)
        matched = set(re.findall(r"[{,]\s*(\w+)\s*(?:=~|!~|!=|=)", expr))
        assert matched <= known, (expr, matched - known)


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
