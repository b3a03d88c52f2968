"""Services (client + headless) and the optional NetworkPolicy."""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests.common import (
    ROLE_LABEL,
    Owner,
    headless_name,
    metadata,
    selector_labels,
)


def service_ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    proxy = spec["proxy"]
    ports = [
        {"name": "memcache", "port": 11211, "targetPort": "memcache", "protocol": "TCP"},
        {"name": "metrics", "port": 9150, "targetPort": "metrics", "protocol": "TCP"},
    ]
    if proxy["batchPort"]["enabled"]:
        ports.append({"name": "memcache-batch", "port": 11213, "targetPort": "memcache-batch", "protocol": "TCP"})
    return ports


def headless_ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The ring's ports under each member name: 11211 (the name clients hash) and the peer port."""
    peer = spec["proxy"]["ports"]["peer"]
    return [*service_ports(spec), {"name": "peer", "port": peer, "targetPort": "peer", "protocol": "TCP"}]


def client_service(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    """Clients connect to NAME:11211 whatever port the proxy listens on inside the pod."""
    service = spec["service"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            owner,
            spec,
            owner.name,
            labels={**service.get("labels", {}), ROLE_LABEL: "client"},
            annotations=service.get("annotations"),
        ),
        "spec": {"type": service["type"], "selector": selector_labels(owner), "ports": service_ports(spec)},
    }


def headless_service(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet's governing Service: NAME-i.NAME-headless.NS.svc for every pod, ready or not
    (a member starting up must be reachable by name for the writes of a ring change)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, spec, headless_name(owner), labels={ROLE_LABEL: "headless"}),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(owner),
            "ports": headless_ports(spec),
        },
    }


def _peer(pod_selector: dict[str, Any] | None, namespace_selector: dict[str, Any] | None) -> dict[str, Any]:
    peer: dict[str, Any] = {}
    if pod_selector is not None:
        peer["podSelector"] = pod_selector
    if namespace_selector is not None:
        peer["namespaceSelector"] = namespace_selector
    return peer


def network_policy(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    """Only selected clients reach the memcache ports; only the monitoring namespaces reach metrics.

    An empty clientSelector means every pod of this namespace; the kubelet's probes are never blocked
    by NetworkPolicy, so /healthz and /readyz keep working.
    """
    policy = spec["networkPolicy"]
    proxy = spec["proxy"]
    client_ports = [{"protocol": "TCP", "port": proxy["ports"]["client"]}]
    if proxy["batchPort"]["enabled"]:
        client_ports.append({"protocol": "TCP", "port": proxy["ports"]["batch"]})
    clients = _peer(policy.get("clientSelector", {}), policy.get("clientNamespaceSelector"))
    ingress = [
        {"from": [clients], "ports": client_ports},
        # the other proxies of the ring forward requests to each member's peer port
        {
            "from": [{"podSelector": {"matchLabels": selector_labels(owner)}}],
            "ports": [{"protocol": "TCP", "port": proxy["ports"]["peer"]}],
        },
    ]
    metrics_ns = policy.get("metricsNamespaceSelector")
    if metrics_ns is not None:
        ingress.append(
            {
                "from": [{"namespaceSelector": metrics_ns}],
                "ports": [{"protocol": "TCP", "port": proxy["ports"]["metrics"]}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(owner, spec, owner.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
