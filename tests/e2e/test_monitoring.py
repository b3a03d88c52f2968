"""A real Prometheus finds the tier's pods through the Kubernetes API
(kubernetes_sd_configs, role pod, as docs/monitoring.md describes for a plain Prometheus), scrapes
their metrics port, and every query of the chart's dashboard returns data from the running pods.
Debian's `prometheus` is built without Kubernetes discovery, so this is Prometheus 3 built from its Go
module by scripts/k8s/build.sh.

Faults the error panels need are made for real: a command the proxy does not know (client errors)
and memcached stopped in one pod (the container restarts; that proxy's backend errors and
backend-up gauge move). The tier is the README's example (L1 only) with a ring that has not changed
yet, so the L2 hit ratio and the ring's warm-up and reload panels have no series to return.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import Tier
from tests.e2e.load import Load, split
from tests.monitoring.prometheus import api, query, start_prometheus_with, without_data
from tests.support.wait import poll

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "cacheproxy" / "dashboards" / "cacheproxy.json"
BUILT = sorted((Path.home() / ".cache" / "k8s").glob("prometheus-*/prometheus"))
QUERY_DEADLINE_SECONDS = 120.0
LOAD_SECONDS = 150.0


def prometheus_config(kubeconfig: str, namespace: str) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "cacheproxy-pods",
            "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": kubeconfig,
                                       "namespaces": {"names": [namespace]}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": "cacheproxy",
                 "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics",
                 "action": "keep"},
                {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        }],
    }


def dashboard_queries(namespace: str, instance: str) -> dict[str, str]:
    variables = {"$namespace": namespace, "$cacheproxy": instance, "$__rate_interval": "20s"}
    queries = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(variables, key=len, reverse=True):
                expr = expr.replace(name, variables[name])
            queries[f"{panel['title']} / {target['refId']}"] = expr
    return queries


def send_unknown_command(address: str) -> None:
    with socket.create_connection(split(address), timeout=10) as sock:
        sock.sendall(b"no_such_command\r\n")
        assert sock.recv(100).startswith(b"ERROR")


def test_prometheus_discovers_the_pods_and_every_dashboard_query_has_data(tier: Tier) -> None:
    assert BUILT, "no Prometheus with Kubernetes discovery in ~/.cache/k8s: run scripts/k8s/build.sh"
    pods = tier.wait_ready(2)
    prometheus = start_prometheus_with(prometheus_config(tier.cluster.kubeconfig, tier.namespace), str(BUILT[-1]))
    load = Load([("dashboard", tier.service_address(), 10, True)], seconds=LOAD_SECONDS, pace=0.05)
    load.start()
    try:
        # discovery: one active target per pod, all up
        def targets_up() -> list[dict] | None:
            active = api(prometheus, "targets")["activeTargets"]
            up = [t for t in active if t["health"] == "up"]
            return up if len(up) == len(active) == len(pods) else None
        targets = poll(targets_up, timeout=60, what="both pods scraped")
        assert {t["labels"]["pod"] for t in targets} == {p["metadata"]["name"] for p in pods}

        send_unknown_command(tier.service_address())
        faulty = pods[0]["metadata"]["name"]
        tier.exec(faulty, "memcached", "sh", "-c", "kill 1", check=False)
        poll(lambda: query(prometheus, f'cacheproxy_backend_errors_total{{pod="{faulty}"}}'), timeout=60,
             what="backend errors while memcached restarts")
        tier.wait_ready(2)

        queries = dashboard_queries(tier.namespace, tier.name)
        # L2 series exist only with an L2; warm-up, sweep and reload counters only once the ring has
        # changed (the ring tests scale the tier later); waits only once a member's proxy went away; the
        # ConfigMap watch's events and reconnects only once the API server sent one or ended a watch
        # (after 4-6 minutes). tests/monitoring/test_ring_prometheus.py has data for each.
        words = ('level="l2"', "ring_warmup_total", "config_reloads_total", "ring_waits_total",
                 "config_watch_events_total", "config_watch_reconnects_total")
        no_series = {name for name, expr in queries.items() if any(word in expr for word in words)}
        assert len(no_series) == 7, no_series
        pending = without_data(prometheus, {name: expr for name, expr in queries.items() if name not in no_series},
                               QUERY_DEADLINE_SECONDS)
        assert not pending, f"dashboard queries without data after {QUERY_DEADLINE_SECONDS}s: {pending}"

        # the template variables resolve to the running tier
        assert tier.namespace in api(prometheus, "label/namespace/values", {"match[]": "cacheproxy_info"})
        instances = api(prometheus, "label/app_kubernetes_io_instance/values",
                        {"match[]": f'cacheproxy_info{{namespace="{tier.namespace}"}}'})
        assert instances == [tier.name]
    finally:
        load.halt()
        load.join(timeout=30)
        prometheus.stop()
        shutil.rmtree(prometheus.extra["workdir"], ignore_errors=True)
    assert load.error is None and sum(c.ops for c, _ in load.clients) > 0
