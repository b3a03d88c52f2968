"""The ServiceMonitor for the Prometheus Operator (scrapes the client Service's metrics port)."""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests.common import ROLE_LABEL, Owner, metadata, selector_labels

SERVICE_MONITOR_API = "monitoring.coreos.com/v1"


def service_monitor(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    settings = spec["monitoring"]["serviceMonitor"]
    endpoint: dict[str, Any] = {"port": "metrics", "path": "/metrics", "interval": settings["interval"]}
    if settings.get("scrapeTimeout"):
        endpoint["scrapeTimeout"] = settings["scrapeTimeout"]
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": metadata(owner, spec, owner.name, labels=settings.get("labels")),
        "spec": {
            # Only the client Service: selecting the headless one too would scrape every pod twice.
            "selector": {"matchLabels": {**selector_labels(owner), ROLE_LABEL: "client"}},
            "namespaceSelector": {"matchNames": [owner.namespace]},
            "endpoints": [endpoint],
            # The dashboard and alerts select and group by CacheProxy through this pod label.
            "podTargetLabels": ["app.kubernetes.io/instance"],
        },
    }
