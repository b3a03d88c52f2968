"""Pure builders: a (defaulted) CacheProxy spec in, the child manifests out. No API calls here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cacheproxy_operator.manifests.access import access
from cacheproxy_operator.manifests.common import Owner, content_hash
from cacheproxy_operator.manifests.config import config_hash, config_map
from cacheproxy_operator.manifests.monitoring import SERVICE_MONITOR_API, service_monitor
from cacheproxy_operator.manifests.network import client_service, headless_service, network_policy
from cacheproxy_operator.manifests.policy import pod_disruption_budget
from cacheproxy_operator.manifests.ring import RingView
from cacheproxy_operator.manifests.security import CERT_MANAGER_API, certificate, wants_certificate
from cacheproxy_operator.manifests.workload import statefulset

__all__ = [
    "CERT_MANAGER_API",
    "SERVICE_MONITOR_API",
    "Capabilities",
    "Owner",
    "Plan",
    "RingView",
    "build",
    "config_hash",
    "content_hash",
]


@dataclass(frozen=True)
class Capabilities:
    """What the API server serves, as far as the children are concerned."""

    service_monitor: bool = True
    cert_manager: bool = True  # cert-manager.io/v1 served (cert-manager installed)


@dataclass(frozen=True)
class Plan:
    """The children that should exist, and the optional kinds that should not (to be pruned)."""

    desired: list[dict[str, Any]]
    absent: list[tuple[str, str]]  # (apiVersion, kind) of optional children not wanted now


def build(
    owner: Owner,
    spec: dict[str, Any],
    caps: Capabilities = Capabilities(),
    ring: RingView | None = None,
    pods: int | None = None,
) -> Plan:
    """Every child for SPEC, in apply order (the ConfigMap, the Certificate and the pods' ServiceAccount
    with its Role and RoleBinding before the StatefulSet that uses them).

    RING is what the proxies are told (default: a settled ring of spec.replicas members) and PODS the
    StatefulSet's replicas (default: the larger of the two rings).
    """
    if ring is None:
        ring = RingView(generation=1, members=spec["replicas"])
    if pods is None:
        pods = max(ring.members, ring.previous)
    desired = [config_map(owner, spec, ring)]
    absent: list[tuple[str, str]] = []
    if wants_certificate(spec) and caps.cert_manager:  # before the pods that mount its Secret
        desired.append(certificate(owner, spec, pods))
    elif caps.cert_manager:
        absent.append((CERT_MANAGER_API, "Certificate"))
    desired += access(owner, spec)  # the pods' ServiceAccount, Role and RoleBinding, before the pods
    desired += [
        statefulset(owner, spec, pods),
        client_service(owner, spec),
        headless_service(owner, spec),
    ]
    if spec["podDisruptionBudget"]["enabled"]:
        desired.append(pod_disruption_budget(owner, spec))
    else:
        absent.append(("policy/v1", "PodDisruptionBudget"))
    if spec["monitoring"]["serviceMonitor"]["enabled"] and caps.service_monitor:
        desired.append(service_monitor(owner, spec))
    elif caps.service_monitor:
        absent.append((SERVICE_MONITOR_API, "ServiceMonitor"))
    if spec["networkPolicy"]["enabled"]:
        desired.append(network_policy(owner, spec))
    else:
        absent.append(("networking.k8s.io/v1", "NetworkPolicy"))
    return Plan(desired=desired, absent=absent)
