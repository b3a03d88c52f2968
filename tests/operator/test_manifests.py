"""The pure manifest builders: content of every child, and schema validity for Kubernetes 1.33."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cacheproxy_operator.manifests import Capabilities, Owner, RingView, build
from cacheproxy_operator.manifests.common import APP_NAME, CONFIG_HASH_ANNOTATION
from cacheproxy_operator.manifests.config import L1_SOCKET, L2_SOCKET, config_hash, proxy_config
from cacheproxy_operator.manifests.ring import WARMUP_HOLD_SECONDS, member_names
from cacheproxy_operator.spec import with_defaults

from tests.operator.specs import MAXIMAL_SPEC

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(name="cache", namespace="apps", uid="5f1c1e9a-0000-4000-8000-000000000001")
K8S_VERSION = "1.33"
INSTANCE = "app.kubernetes.io/instance"


def children(spec: dict[str, Any], caps: Capabilities | None = None) -> dict[str, dict[str, Any]]:
    plan = build(OWNER, with_defaults(spec), caps or Capabilities())
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in plan.desired}


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of the pod, native sidecars (init containers) included."""
    pod = workload["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}


def service_monitor_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "scripts/k8s/servicemonitor-crd.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def certificate_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "tests/operator/certificate-crd-minimal.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("spec", [{}, MAXIMAL_SPEC], ids=["default", "maximal"])
def test_every_child_is_valid_for_current_kubernetes(spec: dict[str, Any]) -> None:
    for manifest in children(spec).values():
        if manifest["kind"] == "ServiceMonitor":  # not a core type: check it against the CRD schema
            jsonschema.validate(manifest, service_monitor_schema())
            continue
        if manifest["kind"] == "Certificate":  # cert-manager's
            jsonschema.validate(manifest, certificate_schema())
            continue
        assert kubernetes_validate.validate(manifest, K8S_VERSION, strict=True) == K8S_VERSION


def test_strict_validation_catches_a_broken_manifest() -> None:
    """Guards the test above: the validator really is strict about unknown and mistyped fields."""
    workload = children({})["StatefulSet/cache"]
    workload["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(workload, K8S_VERSION, strict=True)


def test_default_spec_children() -> None:
    kids = children({})
    assert sorted(kids) == [
        "ConfigMap/cache-config",
        "PodDisruptionBudget/cache",
        "Role/cache-read-config",
        "RoleBinding/cache-read-config",
        "Service/cache",
        "Service/cache-headless",
        "ServiceAccount/cache",
        "ServiceMonitor/cache",
        "StatefulSet/cache",
    ]
    for manifest in kids.values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "apps"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "cacheproxy.io/v1alpha1",
                "kind": "CacheProxy",
                "name": "cache",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["app.kubernetes.io/name"] == APP_NAME
        assert meta["labels"]["app.kubernetes.io/instance"] == "cache"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "cacheproxy-operator"
        assert meta["labels"]["app.kubernetes.io/part-of"] == APP_NAME


def test_workload_wiring_matches_the_contract() -> None:
    workload = children({})["StatefulSet/cache"]
    pod = workload["spec"]["template"]["spec"]
    by_name = containers(workload)
    assert list(by_name) == ["memcached", "cacheproxy"]
    memcached, proxy = by_name["memcached"], by_name["cacheproxy"]
    assert memcached["image"] == "ghcr.io/cacheproxy/cacheproxy:0.1.0"
    assert memcached["args"][:2] == ["-s", L1_SOCKET]
    assert memcached["args"][memcached["args"].index("-m") + 1] == "1024"
    assert memcached["args"][memcached["args"].index("-I") + 1] == "1048576"
    assert proxy["image"] == "ghcr.io/cacheproxy/cacheproxy:0.1.0"
    assert proxy["command"] + proxy["args"] == ["cacheproxy", "--config", "/etc/cacheproxy/config.yaml"]
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert ports == {"memcache": 11211, "metrics": 9150, "peer": 11212}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert proxy["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    # memcached is a native sidecar: started before the proxy, stopped by the kubelet once the proxy
    # has drained and exited, with no fixed sleep of its own
    assert [c["name"] for c in pod["initContainers"]] == ["memcached"]
    assert [c["name"] for c in pod["containers"]] == ["cacheproxy"]
    assert memcached["restartPolicy"] == "Always" and "lifecycle" not in memcached
    assert pod["terminationGracePeriodSeconds"] >= 5 + 25  # an upper bound: preStop delay + drain
    mounts = {c["name"]: {m["mountPath"] for m in c["volumeMounts"]} for c in containers(workload).values()}
    assert "/var/run/cacheproxy" in mounts["memcached"] & mounts["cacheproxy"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["sockets"]
    assert volumes["config"]["configMap"]["name"] == "cache-config"
    assert workload["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == config_hash(
        with_defaults({})
    )
    assert workload["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": "cache",
    }


def test_security_defaults_are_non_root_read_only_and_drop_all() -> None:
    workload = children(MAXIMAL_SPEC)["StatefulSet/cache"]
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 20000
    assert pod["automountServiceAccountToken"] is False
    for container in containers(workload).values():
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert "add" not in ctx["capabilities"]


def test_config_file_follows_the_contract() -> None:
    default = proxy_config(with_defaults({}))
    assert default["listen"] == "0.0.0.0:11211" and default["admin"] == "0.0.0.0:9150"
    assert default["l1"] == f"unix:{L1_SOCKET}" and default["l2"] is None
    assert default["orca"] == "l1only" and default["batch_listen"] is None
    full = proxy_config(with_defaults(MAXIMAL_SPEC))
    assert full["l2"] == f"unix:{L2_SOCKET}" and full["orca"] == "l1l2"
    assert full["batch_listen"] == "0.0.0.0:21212" and full["batching"]["flush_us"] == 100
    assert full["max_item_size"] == 2097152 and full["backend_timeout"] == 0.5
    assert full["chunking"] == {"enabled": True, "threshold": 1048576, "chunk_size": 1000000}
    text = children(MAXIMAL_SPEC)["ConfigMap/cache-config"]["data"]["config.yaml"]
    written = yaml.safe_load(text)
    assert {k: v for k, v in written.items() if k != "ring"} == full
    assert written["ring"]["generation"] == 1 and written["ring"]["phase"] == "serve"
    assert [m["name"] for m in written["ring"]["members"]] == member_names(OWNER, 3)


def test_ring_section_follows_the_ring_contract() -> None:
    spec = with_defaults({"replicas": 3, "ring": {"warmupSeconds": 30, "ownerDown": "error", "downWaitSeconds": 12}})
    plan = build(OWNER, spec, ring=RingView(generation=7, phase="prepare", members=3, previous=2))
    ring = yaml.safe_load(plan.desired[0]["data"]["config.yaml"])["ring"]
    assert ring == {
        "generation": 7,
        "members": [
            {"name": f"cache-{i}.cache-headless.apps.svc", "peer": f"cache-{i}.cache-headless.apps.svc:11212"}
            for i in range(3)
        ],
        "previous": [
            {"name": f"cache-{i}.cache-headless.apps.svc", "peer": f"cache-{i}.cache-headless.apps.svc:11212"}
            for i in range(2)
        ],
        "phase": "prepare",
        "peer_listen": "0.0.0.0:11212",
        "warmup_seconds": 30,
        "owner_down": "error",
        "down_wait": 12,
    }
    # the self name is per pod: the downward API's pod name, expanded by the kubelet
    workload = {m["kind"]: m for m in plan.desired}["StatefulSet"]
    assert workload["spec"]["replicas"] == 3
    env = containers(workload)["cacheproxy"]["env"]
    assert env == [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CACHEPROXY_RING_SELF", "value": "$(POD_NAME).cache-headless.apps.svc"},
        {"name": "CACHEPROXY_CONFIGMAP", "value": "cache-config"},
    ]
    held = build(OWNER, spec, ring=RingView(generation=8, phase="serve", members=3, previous=2, hold_warmup=True))
    assert yaml.safe_load(held.desired[0]["data"]["config.yaml"])["ring"]["warmup_seconds"] == WARMUP_HOLD_SECONDS


def test_statefulset_gives_stable_identity() -> None:
    workload = children({"replicas": 3})["StatefulSet/cache"]["spec"]
    assert workload["serviceName"] == "cache-headless"
    assert workload["podManagementPolicy"] == "Parallel"
    assert workload["replicas"] == 3
    assert "volumeClaimTemplates" not in workload  # no L2 claim, nothing to keep per pod


def template_of(spec: dict[str, Any], ring: RingView | None = None) -> dict[str, Any]:
    plan = build(OWNER, with_defaults(spec), ring=ring)
    return {m["kind"]: m for m in plan.desired}["StatefulSet"]["spec"]["template"]


@pytest.mark.parametrize(
    "live_change",
    [
        {"replicas": 7},
        {"proxy": {"logLevel": "debug"}},
        {"proxy": {"idleTimeoutSeconds": 60, "readTimeoutSeconds": 5, "backendTimeoutMilliseconds": 100}},
        {"proxy": {"maxConnections": 500}},
        {"ring": {"warmupSeconds": 60, "ownerDown": "error"}},
    ],
    ids=["membership", "log-level", "timeouts", "limits", "warm-up"],
)
def test_live_settings_and_membership_leave_the_pod_template_alone(live_change: dict[str, Any]) -> None:
    before = template_of({})
    assert template_of(live_change) == before
    assert template_of({}, RingView(generation=9, phase="prepare", members=3, previous=2)) == before


@pytest.mark.parametrize(
    "restart_change",
    [
        {"proxy": {"workers": 2}},
        {"proxy": {"batching": {"maxBatch": 8}}},
        {"proxy": {"locked": True}},
        {"memcached": {"maxItemSize": 2097152}},
    ],
    ids=["workers", "batching", "locked", "max-item-size"],
)
def test_restart_only_settings_change_the_pod_template_hash(restart_change: dict[str, Any]) -> None:
    before = template_of({})["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    after = template_of(restart_change)["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    assert after != before


def test_l2_container_and_per_pod_claim() -> None:
    workload = children(MAXIMAL_SPEC)["StatefulSet/cache"]
    l2 = containers(workload)["memcached-l2"]
    assert "ext_path=/data/extstore:20480M" in l2["args"]
    assert l2["args"][:2] == ["-s", L2_SOCKET]
    assert "l2-data" not in {v["name"] for v in workload["spec"]["template"]["spec"]["volumes"]}
    (template,) = workload["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "l2-data"
    claim = template["spec"]
    assert claim["storageClassName"] == "fast-ssd"
    assert claim["resources"]["requests"]["storage"] == "24Gi"
    empty = children({"l2": {"enabled": True, "extstoreSize": "10Gi"}})["StatefulSet/cache"]
    volume = {v["name"]: v for v in empty["spec"]["template"]["spec"]["volumes"]}["l2-data"]
    assert volume["emptyDir"]["sizeLimit"] == "11264Mi"  # extstore + 10 %


def test_services_ports_and_headless() -> None:
    kids = children(MAXIMAL_SPEC)
    client, headless = kids["Service/cache"], kids["Service/cache-headless"]
    assert client["spec"]["type"] == "LoadBalancer"
    assert client["metadata"]["annotations"] == MAXIMAL_SPEC["service"]["annotations"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in client["spec"]["ports"]} == {
        "memcache": (11211, "memcache"),
        "metrics": (9150, "metrics"),
        "memcache-batch": (11213, "memcache-batch"),
    }
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]}["peer"] == 11212
    proxy = containers(kids["StatefulSet/cache"])["cacheproxy"]
    assert {p["name"] for p in proxy["ports"]} == {p["targetPort"] for p in headless["spec"]["ports"]}


def test_service_monitor_selects_only_the_client_service() -> None:
    kids = children(MAXIMAL_SPEC)
    monitor = kids["ServiceMonitor/cache"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    matching = [
        k for k, m in kids.items() if m["kind"] == "Service" and selector.items() <= m["metadata"]["labels"].items()
    ]
    assert matching == ["Service/cache"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]


def test_optional_children_follow_capabilities_and_switches() -> None:
    plan = build(OWNER, with_defaults({}), Capabilities(service_monitor=False))
    kinds = {m["kind"]: m for m in plan.desired}
    assert "ServiceMonitor" not in kinds
    assert kinds["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    assert kinds["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    assert [(c["name"], c["restartPolicy"]) for c in pod["initContainers"]] == [("memcached", "Always")]
    assert [c["name"] for c in pod["containers"]] == ["cacheproxy"]
    off = build(
        OWNER,
        with_defaults(
            {"podDisruptionBudget": {"enabled": False}, "monitoring": {"serviceMonitor": {"enabled": False}}}
        ),
    )
    assert {m["kind"] for m in off.desired} == {
        "ConfigMap", "StatefulSet", "Service", "ServiceAccount", "Role", "RoleBinding"}
    assert set(off.absent) == {
        ("policy/v1", "PodDisruptionBudget"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("cert-manager.io/v1", "Certificate"),
    }


def test_network_policy_limits_clients_by_label() -> None:
    policy = children(MAXIMAL_SPEC)["NetworkPolicy/cache"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    clients, peers, metrics = policy["ingress"]
    assert peers == {
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP_NAME, INSTANCE: "cache"}}}],
        "ports": [{"protocol": "TCP", "port": 11212}],
    }
    assert clients["from"] == [
        {
            "podSelector": {"matchLabels": {"cache-client": "true"}},
            "namespaceSelector": MAXIMAL_SPEC["networkPolicy"]["clientNamespaceSelector"],
        }
    ]
    assert {p["port"] for p in clients["ports"]} == {21211, 21212}
    assert metrics["ports"] == [{"protocol": "TCP", "port": 29150}]


def test_placement() -> None:
    pod = children(MAXIMAL_SPEC)["StatefulSet/cache"]["spec"]["template"]["spec"]
    required = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["topologySpreadConstraints"][0]["labelSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": "cache"}
    }
    assert pod["nodeSelector"] == {"node-role/cache": "true"}
    assert pod["priorityClassName"] == "cache-critical"
    soft = children({})["StatefulSet/cache"]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in soft
    none = children({"placement": {"antiAffinity": "none"}})["StatefulSet/cache"]["spec"]["template"]["spec"]
    assert "affinity" not in none


def test_builders_are_pure() -> None:
    spec = with_defaults(MAXIMAL_SPEC)
    frozen = yaml.safe_dump(spec)
    assert build(OWNER, spec) == build(OWNER, spec)
    assert yaml.safe_dump(spec) == frozen


def test_tier_pods_run_as_the_images_own_user() -> None:
    """The Dockerfile's USER is the default identity of every tier container (one uid owns the files)."""
    user = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER "))
    uid, gid = (int(part) for part in user.split(":"))
    workload = children({})["StatefulSet/cache"]
    pod = workload["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["fsGroup"] == gid
    for container in containers(workload).values():
        assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (uid, gid)
