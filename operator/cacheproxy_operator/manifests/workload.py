"""The StatefulSet: memcached L1 (+ optional extstore L2) and the cacheproxy sidecar in one pod.

Pods are NAME-0 .. NAME-(n-1) with per-pod DNS through the headless Service (the ring's member
names); podManagementPolicy Parallel, because the ring, not the pod order, decides who serves what.
An L2 on a claim is a volumeClaimTemplates entry: pod NAME-i keeps its claim across restarts (but
memcached's extstore starts empty on every start: the claim saves provisioning, not data).

memcached listens only on unix sockets in an emptyDir shared with the proxy, so the proxy is the
pod's one network entry point. memcached runs as a native sidecar (an init container with
restartPolicy Always): the kubelet starts it before the proxy and stops it only after the proxy has
exited. On termination the proxy gets a short preStop pause (endpoints drop the pod first), then
SIGTERM and drains; memcached serves the drain and exits right after it, so a pod takes as long to
stop as its drain, not a fixed sleep.
"""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests.access import (
    config_map_env,
    service_account_name,
    token_mount,
    token_volume,
)
from cacheproxy_operator.manifests.common import (
    CONFIG_HASH_ANNOTATION,
    Owner,
    config_map_name,
    headless_name,
    metadata,
    selector_labels,
    standard_labels,
)
from cacheproxy_operator.manifests.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    L1_SOCKET,
    L2_SOCKET,
    SOCKET_DIR,
    config_hash,
)
from cacheproxy_operator.manifests.ring import self_name_template
from cacheproxy_operator.manifests.security import secret_mounts, secret_volumes
from cacheproxy_operator.spec import l2_volume_size, mebibytes

L2_DATA_DIR = "/data"
DRAIN_SLACK_SECONDS = 5


def _memcached_resources(memory_mib: int, given: dict[str, Any]) -> dict[str, Any]:
    """The user's resources, or memory sized from -m plus memcached's own overhead."""
    if given:
        return given
    memory = f"{memory_mib + max(32, memory_mib // 10)}Mi"
    return {"requests": {"cpu": "100m", "memory": memory}, "limits": {"memory": memory}}


def _proxy_resources(given: dict[str, Any]) -> dict[str, Any]:
    return given or {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def _run_as(security: dict[str, Any]) -> dict[str, Any]:
    """The identity fields the pod and every container state alike."""
    return {key: security[key] for key in ("runAsNonRoot", "runAsUser", "runAsGroup")}


def _container_security(spec: dict[str, Any]) -> dict[str, Any]:
    security = spec["securityContext"]
    return {
        **_run_as(security),
        "readOnlyRootFilesystem": security["readOnlyRootFilesystem"],
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(spec: dict[str, Any]) -> dict[str, Any]:
    security = spec["securityContext"]
    return {**_run_as(security), "fsGroup": security["fsGroup"], "seccompProfile": {"type": "RuntimeDefault"}}


def _drain_seconds(spec: dict[str, Any]) -> int:
    proxy = spec["proxy"]
    return proxy["preStopDelaySeconds"] + proxy["shutdownGraceSeconds"]


def _sleep_prestop(seconds: int) -> dict[str, Any]:
    return {"preStop": {"exec": {"command": ["sleep", str(seconds)]}}}


def memcached_l1_container(spec: dict[str, Any]) -> dict[str, Any]:
    memcached = spec["memcached"]
    args = _memcached_args(L1_SOCKET, memcached["memoryMiB"], memcached, memcached.get("extraArgs", []))
    return {
        "name": "memcached",
        "image": memcached["image"],
        "imagePullPolicy": memcached["imagePullPolicy"],
        "command": ["memcached"],
        "args": args,
        "resources": _memcached_resources(memcached["memoryMiB"], memcached.get("resources", {})),
        "securityContext": _container_security(spec),
        "volumeMounts": [{"name": "sockets", "mountPath": SOCKET_DIR}],
    }


def _memcached_args(socket: str, memory_mib: int, memcached: dict[str, Any], extra: list[str]) -> list[str]:
    """One memcached on a unix socket in the shared emptyDir; L1 and L2 share -I, -t and -c."""
    return ["-s", socket, "-a", "0660", "-m", str(memory_mib), "-I", str(memcached["maxItemSize"]),
            "-t", str(memcached["threads"]), "-c", str(memcached["maxConnections"]), *extra]


def memcached_l2_container(spec: dict[str, Any]) -> dict[str, Any]:
    l2, memcached = spec["l2"], spec["memcached"]
    extstore_mib = mebibytes(l2["extstoreSize"])
    args = _memcached_args(L2_SOCKET, l2["memoryMiB"], memcached,
                           ["-o", f"ext_path={L2_DATA_DIR}/extstore:{extstore_mib}M"])
    return {
        "name": "memcached-l2",
        "image": l2.get("image") or memcached["image"],
        "imagePullPolicy": memcached["imagePullPolicy"],
        "command": ["memcached"],
        "args": args,
        "resources": _memcached_resources(l2["memoryMiB"], l2.get("resources", {})),
        "securityContext": _container_security(spec),
        "volumeMounts": [
            {"name": "sockets", "mountPath": SOCKET_DIR},
            {"name": "l2-data", "mountPath": L2_DATA_DIR},
        ],
    }


def proxy_container(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    proxy = spec["proxy"]
    ports = [
        {"name": "memcache", "containerPort": proxy["ports"]["client"], "protocol": "TCP"},
        {"name": "metrics", "containerPort": proxy["ports"]["metrics"], "protocol": "TCP"},
        {"name": "peer", "containerPort": proxy["ports"]["peer"], "protocol": "TCP"},
    ]
    if proxy["batchPort"]["enabled"]:
        ports.append({"name": "memcache-batch", "containerPort": proxy["ports"]["batch"], "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": "cacheproxy",
        "image": proxy["image"],
        "imagePullPolicy": proxy["imagePullPolicy"],
        "command": ["cacheproxy"],
        "args": ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "CACHEPROXY_RING_SELF", "value": self_name_template(owner)},
            config_map_env(owner),
        ],
        "ports": ports,
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "resources": _proxy_resources(proxy.get("resources", {})),
        "securityContext": _container_security(spec),
        "volumeMounts": [
            {"name": "sockets", "mountPath": SOCKET_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            token_mount(),
            *secret_mounts(spec),
        ],
    }
    if proxy["preStopDelaySeconds"]:
        container["lifecycle"] = _sleep_prestop(proxy["preStopDelaySeconds"])
    return container


def _l2_on_claim(spec: dict[str, Any]) -> bool:
    return bool(spec["l2"]["enabled"] and spec["l2"]["storage"]["type"] == "persistentVolumeClaim")


def l2_claim_template(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    """The volumeClaimTemplates entry: claim l2-data-NAME-i per pod, kept by the StatefulSet."""
    storage = spec["l2"]["storage"]
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": l2_volume_size(spec)}},
    }
    if storage.get("storageClassName"):
        claim["storageClassName"] = storage["storageClassName"]
    return {"metadata": {"name": "l2-data", "labels": selector_labels(owner)}, "spec": claim}


def _affinity(owner: Owner, spec: dict[str, Any]) -> dict[str, Any] | None:
    placement = spec["placement"]
    term = {"labelSelector": {"matchLabels": selector_labels(owner)}, "topologyKey": placement["topologyKey"]}
    if placement["antiAffinity"] == "hard":
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    if placement["antiAffinity"] == "soft":
        return {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]
            }
        }
    return None


def _spread_constraints(owner: Owner, spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**c, "labelSelector": c.get("labelSelector") or {"matchLabels": selector_labels(owner)}}
        for c in spec["placement"].get("topologySpreadConstraints", [])
    ]


def termination_grace_seconds(spec: dict[str, Any]) -> int:
    """An upper bound: the pod is gone as soon as the proxy has drained and memcached has exited."""
    return _drain_seconds(spec) + DRAIN_SLACK_SECONDS


def pod_spec(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    memcached = [memcached_l1_container(spec)]
    if spec["l2"]["enabled"]:
        memcached.append(memcached_l2_container(spec))
    sidecars = [{**c, "restartPolicy": "Always"} for c in memcached]
    volumes: list[dict[str, Any]] = [
        {"name": "sockets", "emptyDir": {"sizeLimit": "1Mi"}},
        {"name": "config", "configMap": {"name": config_map_name(owner)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        token_volume(),
        *secret_volumes(owner, spec),
    ]
    if spec["l2"]["enabled"] and not _l2_on_claim(spec):
        volumes.append({"name": "l2-data", "emptyDir": {"sizeLimit": l2_volume_size(spec)}})
    pod: dict[str, Any] = {
        "initContainers": sidecars,
        "containers": [proxy_container(owner, spec)],
        "volumes": volumes,
        "securityContext": _pod_security(spec),
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        # the proxy reads its ConfigMap through the API: its token is mounted in its container only
        "serviceAccountName": service_account_name(owner),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    placement = spec["placement"]
    affinity = _affinity(owner, spec)
    if affinity:
        pod["affinity"] = affinity
    spread = _spread_constraints(owner, spec)
    if spread:
        pod["topologySpreadConstraints"] = spread
    if placement.get("nodeSelector"):
        pod["nodeSelector"] = dict(placement["nodeSelector"])
    if placement.get("tolerations"):
        pod["tolerations"] = list(placement["tolerations"])
    if placement.get("priorityClassName"):
        pod["priorityClassName"] = placement["priorityClassName"]
    if spec.get("imagePullSecrets"):
        pod["imagePullSecrets"] = list(spec["imagePullSecrets"])
    return pod


def statefulset(owner: Owner, spec: dict[str, Any], replicas: int) -> dict[str, Any]:
    """REPLICAS pods (the ring decides the count; it can differ from spec.replicas mid-change).

    The pod template carries only the restart-relevant config hash: membership and live settings
    change in the ConfigMap, which running proxies re-read, so they never roll the pods.
    """
    pod_labels = {**spec.get("podLabels", {}), **standard_labels(owner, spec)}
    pod_annotations = {**spec.get("podAnnotations", {}), CONFIG_HASH_ANNOTATION: config_hash(spec)}
    body: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": headless_name(owner),
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_labels(owner)},
        "revisionHistoryLimit": 5,
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": pod_spec(owner, spec),
        },
    }
    if _l2_on_claim(spec):
        body["volumeClaimTemplates"] = [l2_claim_template(owner, spec)]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(owner, spec, owner.name),
        "spec": body,
    }
