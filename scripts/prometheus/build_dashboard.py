"""Generate the Grafana dashboard (charts/cacheproxy/dashboards/cacheproxy.json).

The dashboard is data, but hand-editing 1,000 lines of Grafana JSON invites drift between panels; it is
built here from a short list of panels instead. tests/monitoring checks that the committed JSON equals
this output and that every panel's query returns data from a real Prometheus scraping a real proxy.

Usage: python3 scripts/prometheus/build_dashboard.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "charts/cacheproxy/dashboards/cacheproxy.json"

# Every proxy series carries these labels (ServiceMonitor podTargetLabels / Prometheus relabelling).
SEL = 'namespace="$namespace", app_kubernetes_io_instance=~"$cacheproxy"'
RATE = "$__rate_interval"
# kube-state-metrics pods of a CacheProxy: the operator's Deployment is named after the CacheProxy.
KSM_SEL = 'namespace="$namespace", pod=~"($cacheproxy)-.*"'
INSTANCES = 'label_values(cacheproxy_info{namespace="$namespace"}, app_kubernetes_io_instance)'


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    extra_defaults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A Grafana row: a full-width, collapsible heading over the panels that follow it."""

    title: str


def hit_ratio(level: str) -> str:
    """Hits over lookups; 0 (not "no data") while a level has had lookups but never a hit."""
    lookups = f'cacheproxy_cache_lookups_total{{{SEL}, level="{level}"'
    total = f"sum(rate({lookups}}}[{RATE}]))"
    return f'(sum(rate({lookups}, result="hit"}}[{RATE}])) or {total} * 0) / {total}'



def latency(quantile: str) -> str:
    return (f"histogram_quantile({quantile}, sum by (le, command) "
            f"(rate(cacheproxy_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))")


PANELS: tuple[Panel | Row, ...] = (
    Panel("Requests/s by command and result", "Client requests answered per second.",
          (Target(f"sum by (command, result) (rate(cacheproxy_requests_total{{{SEL}}}[{RATE}]))",
                  "{{command}} {{result}}"),), unit="reqps"),
    Panel("Hit ratio", "Share of key lookups found, per cache level (L2 only when configured).",
          (Target(hit_ratio("l1"), "L1"), Target(hit_ratio("l2"), "L2")), unit="percentunit",
          extra_defaults={"min": 0, "max": 1}),
    Panel("Latency p50 by command", "Median request latency at the proxy.",
          (Target(latency("0.5"), "{{command}}"),), unit="s"),
    Panel("Latency p99 by command", "99th percentile request latency at the proxy.",
          (Target(latency("0.99"), "{{command}}"),), unit="s"),
    Panel("Client connections", "Open client connections per pod, and the configured maximum.",
          (Target(f"sum by (pod) (cacheproxy_client_connections{{{SEL}}})", "{{pod}}"),
           Target(f"max(cacheproxy_client_connections_max{{{SEL}}})", "max per pod")), unit="short"),
    Panel("Backend connections", "Connections from the proxies to memcached, per backend.",
          (Target(f"sum by (backend) (cacheproxy_backend_connections{{{SEL}}})", "{{backend}}"),),
          unit="short"),
    Panel("Errors by kind", "Errors answered to clients and backend faults per second.",
          (Target(f"sum by (kind) (rate(cacheproxy_errors_total{{{SEL}}}[{RATE}]))", "client {{kind}}"),
           Target(f"sum by (backend, kind) (rate(cacheproxy_backend_errors_total{{{SEL}}}[{RATE}]))",
                  "backend {{backend}} {{kind}}")), unit="short"),
    Panel("Bytes in / out", "Bytes received from and sent to clients per second.",
          (Target(f"sum(rate(cacheproxy_bytes_received_total{{{SEL}}}[{RATE}]))", "in"),
           Target(f"sum(rate(cacheproxy_bytes_sent_total{{{SEL}}}[{RATE}]))", "out")), unit="Bps"),
    Panel("Backend up", "1 while the backend answers; the lowest value across pods.",
          (Target(f"min by (backend) (cacheproxy_backend_up{{{SEL}}})", "{{backend}}"),),
          unit="short", extra_defaults={"min": 0, "max": 1}),
    Panel("Pods ready", "Ready pods (kube-state-metrics; without it: pods Prometheus scrapes).",
          (Target(f'sum(kube_pod_status_ready{{{KSM_SEL}, condition="true"}}) or sum(up{{{SEL}}})',
                  "ready"),), unit="short", kind="stat", width=6),
    Panel("Restarts", "Container restarts (kube-state-metrics; without it: proxy process restarts).",
          (Target(f"sum(increase(kube_pod_container_status_restarts_total{{{KSM_SEL}}}[1h])) "
                  f"or sum(changes(process_start_time_seconds{{{SEL}}}[1h]))", "restarts in 1h"),),
          unit="short", kind="stat", width=6),
    Panel("GC pause p99 by kind", "99th percentile of the garbage collections the proxy runs on its timer "
          "(young every second, old every minute, full every ten minutes); the event loop serves nothing "
          "meanwhile, so a pause is added to every request waiting then.",
          (Target(f"histogram_quantile(0.99, sum by (le, kind) "
                  f"(rate(cacheproxy_gc_pause_seconds_bucket{{{SEL}}}[{RATE}])))", "{{kind}}"),), unit="s"),
    Panel("GC time per second by kind", "Seconds per second the proxies spent collecting garbage (summed "
          "over pods): the share of an event loop's time lost to it.",
          (Target(f"sum by (kind) (rate(cacheproxy_gc_pause_seconds_sum{{{SEL}}}[{RATE}]))", "{{kind}}"),),
          unit="s"),
    # The ring (docs/ring.md): panels titled "Ring: ..." have data only where a ring is configured.
    Panel("Ring: members up", "1 while a member answers forwarded requests, 0 while marked down (lowest across pods).",
          (Target(f"min by (member) (cacheproxy_ring_member_up{{{SEL}}})", "{{member}}"),), width=8),
    Panel("Ring: forwarded requests/s by member", "Requests forwarded to each member's peer port.",
          (Target(f"sum by (member) (rate(cacheproxy_ring_forwarded_total{{{SEL}}}[{RATE}]))", "{{member}}"),),
          unit="reqps", width=8),
    Panel("Ring: forward latency p99 by member", "99th percentile time from forwarding to the member's answer.",
          (Target(f"histogram_quantile(0.99, sum by (le, member) "
                  f"(rate(cacheproxy_ring_forward_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{member}}"),),
          unit="s", width=8),
    Row("Ring changes"),
    # What an SRE watches during a scale: the config reaching every pod (watch and file), the warm-up,
    # answers for members that are away, and the orphan sweep that ends a change.
    Panel("Ring: size and generation", "Members in the ring, the generation applied (lowest and highest across "
          "pods: they differ while a change rolls out) and the lowest generation whose orphan sweep finished "
          "(a change has settled once it reaches the generation).",
          (Target(f"max(cacheproxy_ring_members{{{SEL}}})", "members"),
           Target(f"min(cacheproxy_ring_generation{{{SEL}}})", "generation (lowest)"),
           Target(f"max(cacheproxy_ring_generation{{{SEL}}})", "generation (highest)"),
           Target(f"min(cacheproxy_ring_swept_generation{{{SEL}}})", "swept (lowest)")), width=8),
    Panel("Ring: config updates/s by source and result", "Config texts offered per second, by source (watch: "
          "the ConfigMap through the API; file: the kubelet's copy; signal: SIGHUP) and result (superseded: "
          "the file held a text the watch had already replaced).",
          (Target(f"sum by (source, result) (rate(cacheproxy_config_updates_total{{{SEL}}}[{RATE}]))",
                  "{{source}} {{result}}"),), unit="ops", width=8),
    Panel("Ring: config reloads and ring changes", "Config reloads applied or refused, and ring changes, in 1h.",
          (Target(f"sum by (result) (increase(cacheproxy_config_reloads_total{{{SEL}}}[1h]))", "reload {{result}}"),
           Target(f"sum(increase(cacheproxy_ring_changes_total{{{SEL}}}[1h]))", "ring changes")), width=8),
    Panel("Ring: warm-up and invalidations /s", "Previous-owner reads (hit/miss) and fills of new owners during "
          "warm-up (fill_undone: a racing delete won); previous owners' copies removed by writes.",
          (Target(f'sum by (event) (rate(cacheproxy_ring_warmup_total{{{SEL}, event!~"sweep_.*"}}[{RATE}]))',
                  "{{event}}"),
           Target(f"sum(rate(cacheproxy_ring_previous_invalidations_total{{{SEL}}}[{RATE}]))", "invalidations")),
          unit="ops", width=8),
    Panel("Ring: owner-down answers and waits /s", "Requests for keys of a member marked down, by answer (miss or "
          "error), and requests that waited for a member that went away (parked), sent once it was back "
          "(resumed) or failed at the end of down_wait (expired).",
          (Target(f"sum by (answer) (rate(cacheproxy_ring_owner_down_total{{{SEL}}}[{RATE}]))",
                  "owner down: {{answer}}"),
           Target(f"sum by (event) (rate(cacheproxy_ring_waits_total{{{SEL}}}[{RATE}]))", "wait: {{event}}")),
          unit="ops", width=8),
    Panel("Ring: orphan sweep keys in 1h", "Keys the orphan sweep of a settled ring listed (sweep_scanned) and "
          "deleted as another member's (sweep_deleted), counted when a pod's sweep finishes; GET /ring's "
          "swept_generation names the generation each pod has swept.",
          (Target(f'sum by (event) (increase(cacheproxy_ring_warmup_total{{{SEL}, event=~"sweep_.*"}}[1h]))',
                  "{{event}}"),), width=8),
    Panel("Ring: ConfigMap watch up", "1 while a pod's watch of its ConfigMap through the API is open (with "
          "--workers: in every worker); while it is 0 changes arrive only by the kubelet's file sync.",
          (Target(f"min by (pod) (cacheproxy_config_watch_up{{{SEL}}})", "{{pod}}"),),
          width=8, extra_defaults={"min": 0, "max": 1}),
    Panel("Ring: ConfigMap watch reconnects/s by reason", "closed: the API server ended a watch (every 4-6 "
          "minutes per pod); anything else (forbidden, unauthorized, network, timeout, tls, ...) is a failure.",
          (Target(f"sum by (reason) (rate(cacheproxy_config_watch_reconnects_total{{{SEL}}}[{RATE}]))",
                  "{{reason}}"),), unit="ops", width=8),
    Panel("Ring: ConfigMap watch events/s by type", "Events the API server pushed on the watch (modified: a "
          "config change; bookmark: progress; error or malformed: a reconnect follows).",
          (Target(f"sum by (type) (rate(cacheproxy_config_watch_events_total{{{SEL}}}[{RATE}]))", "{{type}}"),),
          unit="ops", width=8),
)


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    height = 8 if panel.kind == "timeseries" else 5
    body: dict = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, **panel.extra_defaults}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": t.expr, "legendFormat": t.legend,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, t in enumerate(panel.targets)
        ],
    }
    if panel.kind == "timeseries":
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                           "tooltip": {"mode": "multi"}}
    else:
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "colorMode": "value", "graphMode": "area"}
    return body


def row_json(row: Row, panel_id: int, y: int) -> dict:
    return {"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def variables() -> list[dict]:
    ds = {"type": "prometheus", "uid": "${datasource}"}
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "options": []},
        {"name": "namespace", "label": "Namespace", "type": "query", "datasource": ds,
         "query": {"query": "label_values(cacheproxy_info, namespace)", "refId": "namespace"},
         "definition": "label_values(cacheproxy_info, namespace)", "refresh": 2, "sort": 1,
         "current": {}, "hide": 0, "options": [], "includeAll": False, "multi": False},
        {"name": "cacheproxy", "label": "CacheProxy", "type": "query", "datasource": ds,
         "query": {"query": INSTANCES, "refId": "cacheproxy"}, "definition": INSTANCES,
         "refresh": 2, "sort": 1, "current": {}, "hide": 0, "options": [], "includeAll": True,
         "multi": True, "allValue": ".+"},
    ]


def dashboard() -> dict:
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if isinstance(panel, Row):  # starts a line of its own; its panels follow it
            if x:
                x, y, row_height = 0, y + row_height, 0
            panels.append(row_json(panel, panel_id, y))
            y += 1
            continue
        body = panel_json(panel, panel_id, x, y)
        panels.append(body)
        row_height = max(row_height, body["gridPos"]["h"])
        x += panel.width
        if x >= 24:
            x, y, row_height = 0, y + row_height, 0
    return {
        "title": "cacheproxy",
        "uid": "cacheproxy-overview",
        "description": "cacheproxy: traffic, hit ratio, latency, connections, errors, pod health and the ring "
                       "per namespace and CacheProxy.",
        "tags": ["cacheproxy", "memcached"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables()},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if DASHBOARD_PATH.read_text() != text:
            print(f"{DASHBOARD_PATH} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
