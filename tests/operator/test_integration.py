"""The operator against a genuine kube-apiserver + kube-controller-manager (no kubelet: pods never
run, so tests patch pod status to drive readiness, which the StatefulSet controller turns into the
StatefulSet's readyReplicas)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cacheproxy_operator.manifests import Owner, RingView, build
from cacheproxy_operator.manifests.common import CONFIG_HASH_ANNOTATION
from cacheproxy_operator.manifests.config import config_hash, config_text
from cacheproxy_operator.reconcile import STEP_DELAY_ENV, discover, reconcile
from cacheproxy_operator.spec import with_defaults
from kubernetes.client.exceptions import ApiException

from tests.operator.conftest import kubectl, new_namespace
from tests.support.procs import terminate
from tests.support.wait import poll

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
SM_CRD = ROOT / "scripts/k8s/servicemonitor-crd.yaml"
CR = ("cacheproxy.io/v1alpha1", "CacheProxy")
INSTANCE = "app.kubernetes.io/instance"


def create_cacheproxy(kube: Any, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": CR[0],
        "kind": CR[1],
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kube.request("POST", f"/apis/cacheproxy.io/v1alpha1/namespaces/{namespace}/cacheproxies", body=body)


def patch_spec(kube: Any, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.merge_patch(f"/apis/cacheproxy.io/v1alpha1/namespaces/{namespace}/cacheproxies/{name}", {"spec": spec})


def get_cr(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(*CR, namespace, name)


def children(kube: Any, namespace: str, name: str) -> dict[str, list[dict[str, Any]]]:
    selector = {INSTANCE: name}
    kinds = [
        ("v1", "ConfigMap"),
        ("apps/v1", "StatefulSet"),
        ("v1", "Service"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ]
    if kube.serves("monitoring.coreos.com/v1"):
        kinds.append(("monitoring.coreos.com/v1", "ServiceMonitor"))
    return {kind: kube.list(api, kind, namespace, selector) for api, kind in kinds}


def pod_containers(pod: dict[str, Any]) -> list[str]:
    """Container names, native sidecars (init containers with restartPolicy Always) first."""
    return [c["name"] for c in pod.get("initContainers", []) + pod["containers"]]


def condition(cr: dict[str, Any], type_: str) -> tuple[str, str] | None:
    for cond in (cr or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond["status"], cond["reason"]
    return None


def condition_of(kube: Any, namespace: str, name: str, type_: str) -> dict[str, Any]:
    """The CacheProxy's condition TYPE_ as stored ({} before the first status)."""
    conditions = get_cr(kube, namespace, name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), {})


def converged(kube: Any, namespace: str, name: str) -> dict[str, Any] | None:
    cr = get_cr(kube, namespace, name)
    status = cr.get("status", {})
    if status.get("observedGeneration") == cr["metadata"]["generation"] and condition(cr, "Degraded") == (
        "False",
        "AsExpected",
    ):
        return cr
    return None


def events(namespace: str, name: str) -> list[dict[str, Any]]:
    out = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "-o",
        "json",
        "--field-selector",
        f"involvedObject.kind=CacheProxy,involvedObject.name={name}",
    ).stdout
    return json.loads(out)["items"]


def mark_pods_ready(kube: Any, namespace: str, name: str) -> list[str]:
    """What a kubelet would report for running, ready pods."""
    ips = []
    for i, pod in enumerate(kube.list("v1", "Pod", namespace, {INSTANCE: name})):
        ip = f"10.244.0.{i + 10}"
        ips.append(ip)
        kube.merge_patch(
            f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status",
            {
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "ContainersReady", "status": "True"},
                    ],
                }
            },
        )
    return ips


class FakeProxies:
    """What each pod's GET /ring answers once the kubelet has synced the ConfigMap and its proxy has
    reloaded it (there is no kubelet here): the ConfigMap's ring generation. `held` pins a pod's
    answer, as a proxy that has not yet reloaded; `silent` pods do not answer at all."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube
        self.held: dict[str, int] = {}
        self.silent: set[str] = set()
        self.last: dict[tuple[str, str], dict[str, Any]] = {}
        self.asked: set[str] = set()

    def __call__(self, pod: dict[str, Any], port: int) -> dict[str, Any] | None:
        meta = pod["metadata"]
        self.asked.add(meta["name"])
        if meta["name"] in self.silent:
            return None
        if meta["name"] in self.held:
            return {"generation": self.held[meta["name"]], "phase": "serve"}
        config = self.kube.get("v1", "ConfigMap", meta["namespace"], f"{meta['labels'][INSTANCE]}-config")
        if config is None:  # deleted by hand: a proxy keeps the file it has
            return self.last.get((meta["namespace"], meta["name"]))
        ring = yaml.safe_load(config["data"]["config.yaml"])["ring"]
        answer = self.last[(meta["namespace"], meta["name"])] = {"generation": ring["generation"],
                                                                  "phase": ring["phase"]}
        return answer


@pytest.fixture(scope="module", autouse=True)
def proxies(cluster: str) -> Any:
    import cacheproxy_operator.handlers as handlers
    from cacheproxy_operator.kube import Kube, new_api_client

    fake = FakeProxies(Kube(new_api_client()))
    original, handlers.fetch_ring = handlers.fetch_ring, fake
    yield fake
    handlers.fetch_ring = original


def test_create_makes_every_child_with_the_right_content(kube: Any, namespace: str, operator: Any) -> None:
    cr = create_cacheproxy(kube, namespace, "basic", {"replicas": 2})
    cr = poll(lambda: converged(kube, namespace, "basic"), what="first reconcile")
    spec = with_defaults(cr["spec"])
    kids = children(kube, namespace, "basic")
    has_sm = kube.serves("monitoring.coreos.com/v1")
    expected = {
        "ConfigMap": ["basic-config"],
        "StatefulSet": ["basic"],
        "Service": ["basic", "basic-headless"],
        "PodDisruptionBudget": ["basic"],
        "NetworkPolicy": [],
        "ServiceAccount": ["basic"],  # the pods' identity: they may read basic-config, nothing else
        "Role": ["basic-read-config"],
        "RoleBinding": ["basic-read-config"],
    }
    if has_sm:
        expected["ServiceMonitor"] = ["basic"]
    assert {k: sorted(o["metadata"]["name"] for o in v) for k, v in kids.items()} == expected
    for objects in kids.values():
        for obj in objects:
            assert obj["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cacheproxy-operator"
    ring = cr["status"]["ring"]
    assert ring["members"] == [f"basic-{i}.basic-headless.{namespace}.svc" for i in range(2)]
    assert ring["phase"] == "serve" and ring["previous"] == []
    view = RingView(generation=ring["generation"], members=2)
    assert kids["ConfigMap"][0]["data"]["config.yaml"] == config_text(Owner.from_body(cr), spec, view)
    workload = kids["StatefulSet"][0]
    template = workload["spec"]["template"]
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == config_hash(spec)
    assert pod_containers(template["spec"]) == ["memcached", "cacheproxy"]
    assert workload["spec"]["replicas"] == 2 and workload["spec"]["serviceName"] == "basic-headless"
    headless = next(s for s in kids["Service"] if s["metadata"]["name"] == "basic-headless")
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert cr["status"]["configHash"] == config_hash(spec)
    assert condition(cr, "Ready") == ("False", "ReplicasNotReady")
    if not has_sm:
        assert condition(cr, "Monitoring") == ("False", "APINotServed")
    pdb = kube.get("policy/v1", "PodDisruptionBudget", namespace, "basic")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert [c["name"] for c in template["spec"]["initContainers"]] == ["memcached"]
    assert template["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert any(e["reason"] == "Created" for e in events(namespace, "basic"))
    printed = kubectl("get", "cproxy", "-n", namespace, "basic").stdout
    assert printed.split()[:6] == ["NAME", "REPLICAS", "READY", "PHASE", "RING", "AGE"]


def test_reconcile_again_changes_nothing(kube: Any, namespace: str, operator: Any) -> None:
    poll(lambda: converged(kube, namespace, "basic"), what="converged")
    before = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"]
        for kind, objs in children(kube, namespace, "basic").items()
        for o in objs
        if kind != "StatefulSet"
    }
    generation = kube.get("apps/v1", "StatefulSet", namespace, "basic")["metadata"]["generation"]
    posted = []
    outcome = reconcile(kube, get_cr(kube, namespace, "basic"), lambda *event: posted.append(event))
    assert (outcome.created, outcome.updated, outcome.deleted, outcome.error) == ([], [], [], None)
    assert posted == []
    after = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"]
        for kind, objs in children(kube, namespace, "basic").items()
        for o in objs
        if kind != "StatefulSet"
    }
    assert after == before
    workload = kube.get("apps/v1", "StatefulSet", namespace, "basic")
    assert workload["metadata"]["generation"] == generation  # its status moves, its spec did not
    managers = {f["manager"] for f in workload["metadata"]["managedFields"] if f["operation"] == "Apply"}
    assert managers == {"cacheproxy-operator"}


def test_readiness_and_endpoints_come_from_the_pods(kube: Any, namespace: str, operator: Any) -> None:
    poll(lambda: len(kube.list("v1", "Pod", namespace, {INSTANCE: "basic"})) == 2, what="2 pods from the STS")
    ips = mark_pods_ready(kube, namespace, "basic")
    cr = poll(
        lambda: (c := get_cr(kube, namespace, "basic")) and condition(c, "Ready") == ("True", "AllReplicasReady") and c,
        what="Ready=True",
    )
    assert cr["status"]["readyReplicas"] == 2 and cr["status"]["phase"] == "Ready"
    assert cr["status"]["endpoints"] == sorted(f"{ip}:11211" for ip in ips)
    poll(lambda: any(e["reason"] == "Ready" for e in events(namespace, "basic")), what="Ready event")


def test_spec_change_updates_children_and_config_hash(kube: Any, namespace: str, operator: Any) -> None:
    old_hash = get_cr(kube, namespace, "basic")["status"]["configHash"]
    old_template = kube.get("apps/v1", "StatefulSet", namespace, "basic")["spec"]["template"]
    patch_spec(
        kube,
        namespace,
        "basic",
        {
            "replicas": 3,
            "proxy": {"logLevel": "debug"},
            "service": {"annotations": {"example.com/tier": "cache"}},
        },
    )
    cr = poll(lambda: converged(kube, namespace, "basic"), what="reconcile of the edit")
    config = kube.get("v1", "ConfigMap", namespace, "basic-config")["data"]["config.yaml"]
    assert "log_level: debug" in config
    workload = kube.get("apps/v1", "StatefulSet", namespace, "basic")
    assert workload["spec"]["replicas"] == 3
    # live settings and membership reach the proxies through the ConfigMap: the pods do not roll
    assert workload["spec"]["template"] == old_template and cr["status"]["configHash"] == old_hash
    patch_spec(kube, namespace, "basic", {"proxy": {"workers": 2}})
    cr = poll(
        lambda: (c := converged(kube, namespace, "basic")) and c["status"]["configHash"] != old_hash and c,
        what="reconcile of a restart-only edit",
    )
    new_hash = config_hash(with_defaults(cr["spec"]))
    assert cr["status"]["configHash"] == new_hash
    workload = kube.get("apps/v1", "StatefulSet", namespace, "basic")
    assert workload["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == new_hash
    service = kube.get("v1", "Service", namespace, "basic")
    assert service["metadata"]["annotations"]["example.com/tier"] == "cache"
    poll(lambda: (condition(get_cr(kube, namespace, "basic"), "Ready") or ("", ""))[0] == "False", what="Ready drops")


def ring_of(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    return get_cr(kube, namespace, name)["status"]["ring"]


def config_ring(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    return yaml.safe_load(kube.get("v1", "ConfigMap", namespace, f"{name}-config")["data"]["config.yaml"])["ring"]


def ring_events(namespace: str, name: str) -> list[tuple[int, str]]:
    """(generation, reason) of the ring's events, in generation order."""
    found = []
    for event in events(namespace, name):
        if event["reason"].startswith("Ring") and event["message"].startswith("generation "):
            found.append((int(event["message"].split()[1].rstrip(":")), event["reason"]))
    return sorted(set(found))


def test_scale_changes_the_ring_in_phases_without_rolling_the_pods(
    kube: Any, namespace: str, operator: Any, proxies: FakeProxies
) -> None:
    """The README's example, scaled 2 -> 3 -> 2 with kubectl scale."""
    example = ROOT / "examples/cacheproxy.yaml"
    kubectl("apply", "-n", namespace, "-f", str(example))
    cr = poll(lambda: converged(kube, namespace, "cache"), what="example reconciled")
    assert cr["status"]["selector"] == "app.kubernetes.io/name=cacheproxy,app.kubernetes.io/instance=cache"
    scale_path = f"/apis/cacheproxy.io/v1alpha1/namespaces/{namespace}/cacheproxies/cache/scale"
    scale = json.loads(kubectl("get", "--raw", scale_path).stdout)
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == cr["status"]["selector"]
    # a live setting: a short warm-up window, so the test need not wait ten minutes for scale-in
    patch_spec(kube, namespace, "cache", {"ring": {"warmupSeconds": 4}})
    poll(lambda: config_ring(kube, namespace, "cache")["warmup_seconds"] == 4, what="warm-up in the config")
    template = kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["template"]
    start = ring_of(kube, namespace, "cache")
    assert start["step"] == "Stable" and len(start["members"]) == 2
    g = start["generation"]

    # 2 -> 3: cache-1's proxy has not reloaded yet, so the ring must stay in prepare
    proxies.held["cache-1"] = g
    kubectl("scale", "-n", namespace, "cproxy/cache", "--replicas=3")
    ring = poll(
        lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Preparing" and r,
        what="prepare of the 3-member ring",
    )
    assert ring["generation"] == g + 1 and ring["phase"] == "prepare"
    assert ring["members"] == [f"cache-{i}.cache-headless.{namespace}.svc" for i in range(3)]
    assert ring["previous"] == ring["members"][:2]
    config = config_ring(kube, namespace, "cache")
    assert (config["generation"], config["phase"]) == (g + 1, "prepare")
    assert [m["name"] for m in config["members"]] == ring["members"]
    assert [m["name"] for m in config["previous"]] == ring["previous"]
    assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["replicas"] == 3
    poll(lambda: ring_of(kube, namespace, "cache")["waitingFor"] == ["cache-1"], what="waiting for cache-1")
    assert ring_of(kube, namespace, "cache")["step"] == "Preparing"  # still held
    del proxies.held["cache-1"]
    ring = poll(
        lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Stable" and r,
        timeout=60,
        what="the 3-member ring settled",
    )
    assert ring["generation"] == g + 4 and len(ring["members"]) == 3 and ring["previous"] == []
    assert config_ring(kube, namespace, "cache")["generation"] == g + 4

    # 3 -> 2: the leaving member is taken out of the ring first; the StatefulSet shrinks last
    proxies.held["cache-2"] = g + 4
    kubectl("scale", "-n", namespace, "cproxy/cache", "--replicas=2")
    ring = poll(
        lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Preparing" and r,
        what="prepare of the 2-member ring",
    )
    assert len(ring["members"]) == 2 and len(ring["previous"]) == 3
    assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["replicas"] == 3
    poll(lambda: ring_of(kube, namespace, "cache")["waitingFor"] == ["cache-2"], what="waiting for cache-2")
    # cache-2's proxy reads the closed window, then lags on the settled ring: the pod must stay
    proxies.held["cache-2"] = g + 7
    ring = poll(
        lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Settling" and r,
        timeout=60,
        what="the settled 2-member ring published",
    )
    assert (ring["generation"], ring["previous"], ring["pods"]) == (g + 8, [], 3)
    assert config_ring(kube, namespace, "cache")["previous"] == []
    poll(lambda: ring_of(kube, namespace, "cache")["waitingFor"] == ["cache-2"], what="waiting for cache-2")
    assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["replicas"] == 3  # cache-2 still serves
    del proxies.held["cache-2"]
    ring = poll(
        lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Stable" and r,
        timeout=60,
        what="the 2-member ring settled",
    )
    assert ring["generation"] == g + 8 and len(ring["members"]) == 2
    assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["replicas"] == 2
    assert kube.get("v1", "Pod", namespace, "cache-2") is None  # Stable: the leaving pod is gone
    poll(lambda: get_cr(kube, namespace, "cache")["status"]["replicas"] == 2, what="status.replicas follows")
    assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["template"] == template
    expected = [
        (g, "RingAddingPods"),
        (g + 1, "RingPrepare"),
        (g + 2, "RingServe"),
        (g + 2, "RingWarmingUp"),
        (g + 3, "RingWarmUpClosing"),
        (g + 4, "RingSettled"),
        (g + 4, "RingStable"),
        (g + 5, "RingPrepare"),
        (g + 6, "RingServe"),
        (g + 6, "RingWarmingUp"),
        (g + 7, "RingWarmUpClosing"),
        (g + 8, "RingRemovingPods"),
        (g + 8, "RingSettled"),
        (g + 8, "RingStable"),
    ]
    seen = poll(lambda: (found := ring_events(namespace, "cache")) and found[-1] == expected[-1] and found,
                what="the last ring event")
    assert (1, "RingCreated") in seen
    assert [e for e in seen if e[1] != "RingCreated"][-len(expected):] == expected, str(seen)


def test_a_scale_out_whose_pod_never_reports_stalls_visibly_and_is_withdrawn(
    kube: Any, namespace: str, operator: Any, proxies: FakeProxies
) -> None:
    """A new pod that never answers GET /ring holds the change (nothing is routed to it), makes the
    tier Degraded with reason RingStalled naming it after ring.progressDeadlineSeconds, and scaling
    back withdraws the change: the pod goes, the ring stays, the condition clears."""
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples/cacheproxy.yaml"))
    poll(lambda: converged(kube, namespace, "cache"), what="example reconciled")
    patch_spec(kube, namespace, "cache", {"ring": {"progressDeadlineSeconds": 3}})
    g = ring_of(kube, namespace, "cache")["generation"]
    proxies.silent.add("cache-2")
    try:
        kubectl("scale", "-n", namespace, "cproxy/cache", "--replicas=3")
        degraded = poll(
            lambda: (c := condition_of(kube, namespace, "cache", "Degraded"))["reason"] == "RingStalled" and c,
            timeout=60,
            what="the stalled ring change in the conditions",
        )
        assert degraded["status"] == "True" and "AddingPods" in degraded["message"]
        assert "cache-2 to report generation" in degraded["message"]
        assert any(e["reason"] == "RingStalled" and e["type"] == "Warning" for e in events(namespace, "cache"))
        ring = ring_of(kube, namespace, "cache")
        assert (ring["step"], ring["generation"], ring["waitingFor"]) == ("AddingPods", g, ["cache-2"])
        assert len(config_ring(kube, namespace, "cache")["members"]) == 2  # nothing routed to it
        kubectl("scale", "-n", namespace, "cproxy/cache", "--replicas=2")
        ring = poll(
            lambda: (r := ring_of(kube, namespace, "cache"))["step"] == "Stable" and r,
            timeout=60,
            what="the scale-out withdrawn",
        )
        assert (ring["generation"], len(ring["members"])) == (g, 2)
        assert kube.get("apps/v1", "StatefulSet", namespace, "cache")["spec"]["replicas"] == 2
        poll(lambda: condition_of(kube, namespace, "cache", "Degraded")["status"] == "False",
             what="the stall cleared")
    finally:
        proxies.silent.discard("cache-2")


def test_a_deployment_from_the_previous_version_is_replaced(kube: Any, namespace: str, operator: Any) -> None:
    cr = create_cacheproxy(kube, namespace, "legacy", {"replicas": 1})
    service = poll(lambda: kube.get("v1", "Service", namespace, "legacy"), what="client Service")
    labels = {"app.kubernetes.io/name": "cacheproxy", INSTANCE: "legacy"}
    old = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "legacy",
            "namespace": namespace,
            "labels": {**labels, "app.kubernetes.io/managed-by": "cacheproxy-operator"},
            "ownerReferences": [
                {
                    "apiVersion": CR[0],
                    "kind": CR[1],
                    "name": "legacy",
                    "uid": cr["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "cacheproxy", "image": "cacheproxy:previous"}]},
            },
        },
    }
    kube.apply(old)
    poll(lambda: kube.get("apps/v1", "StatefulSet", namespace, "legacy"), what="the StatefulSet")
    poll(lambda: len(kube.list("v1", "Pod", namespace, {INSTANCE: "legacy"})) == 2, what="old and new pod")
    # until the StatefulSet's pod is ready, the old pods keep serving behind the client Service
    assert kube.get("apps/v1", "Deployment", namespace, "legacy") is not None
    mark_pods_ready(kube, namespace, "legacy")
    poll(lambda: kube.get("apps/v1", "Deployment", namespace, "legacy") is None, what="the Deployment removed")
    assert kube.get("v1", "Service", namespace, "legacy")["metadata"]["uid"] == service["metadata"]["uid"]
    poll(lambda: any(e["reason"] == "Deleted" and "Deployment/legacy" in e["message"]
                     for e in events(namespace, "legacy")), what="an event for the migration")
    kubectl("delete", "cproxy", "-n", namespace, "legacy", "--wait=false")


def test_pods_that_cannot_run_surface_their_cause_within_seconds(kube: Any, namespace: str, operator: Any) -> None:
    create_cacheproxy(kube, namespace, "pull", {"replicas": 2})
    poll(lambda: len(kube.list("v1", "Pod", namespace, {INSTANCE: "pull"})) == 2, what="2 pods")
    pod = "pull-1"
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry.invalid/cacheproxy:0"'}
    kube.merge_patch(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
        {
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "cacheproxy",
                        "image": "registry.invalid/cacheproxy:0",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": waiting},
                    }
                ],
            }
        },
    )
    cr = poll(
        lambda: (c := get_cr(kube, namespace, "pull"))
        and condition(c, "Degraded") == ("True", "ImagePullFailing") and c,
        timeout=10,
        what="Degraded=True ImagePullFailing from the pod watch",
    )
    message = next(c["message"] for c in cr["status"]["conditions"] if c["type"] == "Degraded")
    assert "pod pull-1 container cacheproxy: ImagePullBackOff" in message and "registry.invalid" in message
    poll(
        lambda: [e for e in events(namespace, "pull") if e["reason"] == "ImagePullFailing" and e["type"] == "Warning"],
        timeout=10,
        what="a Warning event naming the cause",
    )
    kubectl("delete", "cproxy", "-n", namespace, "pull", "--wait=false")


def test_children_deleted_or_edited_by_hand_are_restored(kube: Any, namespace: str, operator: Any) -> None:
    poll(lambda: converged(kube, namespace, "basic"), what="converged")
    old_uids = {
        kind: kube.get(api, kind, namespace, name)["metadata"]["uid"]
        for api, kind, name in [("v1", "Service", "basic"), ("v1", "ConfigMap", "basic-config")]
    }
    kubectl("delete", "-n", namespace, "service/basic", "configmap/basic-config")
    kubectl("scale", "-n", namespace, "statefulset/basic", "--replicas=7")
    kubectl("label", "-n", namespace, "service/basic-headless", "app.kubernetes.io/managed-by-", "--overwrite")

    def restored() -> bool:
        svc = kube.get("v1", "Service", namespace, "basic")
        cm = kube.get("v1", "ConfigMap", namespace, "basic-config")
        dep = kube.get("apps/v1", "StatefulSet", namespace, "basic")
        return bool(
            svc
            and cm
            and svc["metadata"]["uid"] != old_uids["Service"]
            and cm["metadata"]["uid"] != old_uids["ConfigMap"]
            and dep["spec"]["replicas"] == 3
        )

    poll(restored, what="Service and ConfigMap recreated, replicas back to 3")
    # the headless Service lost the label the child watch filters on: the resync timer restores it
    poll(
        lambda: (
            kube.get("v1", "Service", namespace, "basic-headless")["metadata"]["labels"].get(
                "app.kubernetes.io/managed-by"
            )
            == "cacheproxy-operator"
        ),
        what="label restored",
    )
    assert any(e["reason"] == "ChildrenRestored" for e in events(namespace, "basic"))


def test_schema_rejects_an_invalid_spec(kube: Any, namespace: str, operator: Any) -> None:
    bad = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        stdin=json.dumps(
            {
                "apiVersion": CR[0],
                "kind": CR[1],
                "metadata": {"name": "bad"},
                "spec": {"replicas": -1, "proxy": {"orca": "fast", "ports": {"client": 70000}}},
            }
        ),
    )
    assert bad.returncode != 0
    for fragment in ("spec.replicas", "spec.proxy.orca", "spec.proxy.ports.client"):
        assert fragment in bad.stderr
    with pytest.raises(ApiException) as err:
        create_cacheproxy(kube, namespace, "bad", {"l2": {"extstoreSize": "lots"}})
    assert err.value.status == 422
    assert get_cr(kube, namespace, "bad") is None


def test_semantically_invalid_spec_gets_a_condition_and_an_event(kube: Any, namespace: str, operator: Any) -> None:
    create_cacheproxy(kube, namespace, "wrong", {"proxy": {"orca": "l1l2"}})
    cr = poll(
        lambda: (c := get_cr(kube, namespace, "wrong")) and condition(c, "Degraded") == ("True", "InvalidSpec") and c,
        what="InvalidSpec",
    )
    assert "l2.enabled is false" in next(c["message"] for c in cr["status"]["conditions"] if c["type"] == "Degraded")
    assert cr["status"]["phase"] == "Invalid"
    poll(
        lambda: [e for e in events(namespace, "wrong") if e["reason"] == "InvalidSpec" and e["type"] == "Warning"],
        what="InvalidSpec event",
    )
    assert kube.get("apps/v1", "StatefulSet", namespace, "wrong") is None
    patch_spec(kube, namespace, "wrong", {"l2": {"enabled": True}})
    poll(lambda: converged(kube, namespace, "wrong"), what="fixed spec reconciled")
    workload = kube.get("apps/v1", "StatefulSet", namespace, "wrong")
    names = pod_containers(workload["spec"]["template"]["spec"])
    assert names == ["memcached", "memcached-l2", "cacheproxy"]
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["l2-data"]["emptyDir"]["sizeLimit"] in ("11264Mi", "11Gi")


def test_service_monitor_only_where_the_api_is_served(kube: Any, namespace: str, operator: Any) -> None:
    if kube.serves("monitoring.coreos.com/v1"):
        pytest.fail("this test installs and removes the ServiceMonitor CRD; use a cluster without it")
    create_cacheproxy(
        kube,
        namespace,
        "monitored",
        {
            "monitoring": {"serviceMonitor": {"interval": "15s", "labels": {"release": "kube-prometheus-stack"}}},
            "networkPolicy": {"enabled": True, "clientSelector": {"matchLabels": {"cache-client": "true"}}},
        },
    )
    cr = poll(lambda: converged(kube, namespace, "monitored"), what="reconciled without the API")
    assert condition(cr, "Monitoring") == ("False", "APINotServed")
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", namespace, "monitored") is not None
    kubectl("apply", "-f", str(SM_CRD))
    try:
        kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com",
        )
        monitor = poll(
            lambda: kube.get("monitoring.coreos.com/v1", "ServiceMonitor", namespace, "monitored"),
            what="ServiceMonitor created once the API is served",
        )
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
        poll(
            lambda: condition(get_cr(kube, namespace, "monitored"), "Monitoring") == ("True", "ServiceMonitorCreated"),
            what="Monitoring=True",
        )
        # switched off: the operator removes what it made
        patch_spec(
            kube,
            namespace,
            "monitored",
            {"monitoring": {"serviceMonitor": {"enabled": False}}, "networkPolicy": {"enabled": False}},
        )
        poll(
            lambda: (
                kube.get("monitoring.coreos.com/v1", "ServiceMonitor", namespace, "monitored") is None
                and kube.get("networking.k8s.io/v1", "NetworkPolicy", namespace, "monitored") is None
            ),
            what="ServiceMonitor and NetworkPolicy pruned",
        )
    finally:
        kubectl("delete", "-f", str(SM_CRD), "--wait=true", check=False)


def test_deleting_the_cacheproxy_collects_every_child(kube: Any, namespace: str, operator: Any) -> None:
    poll(lambda: converged(kube, namespace, "basic"), what="converged")
    assert kube.list("apps/v1", "StatefulSet", namespace, {INSTANCE: "basic"})
    kubectl("delete", "cproxy", "-n", namespace, "basic", "--wait=true")

    def leftovers() -> list[str]:
        found = [f"{k}/{o['metadata']['name']}" for k, objs in children(kube, namespace, "basic").items() for o in objs]
        found += [f"Pod/{p['metadata']['name']}" for p in kube.list("v1", "Pod", namespace, {INSTANCE: "basic"})]
        return found

    poll(lambda: not leftovers(), timeout=90, interval=1, what="garbage collection of the children")


def test_operator_killed_mid_reconcile_converges_without_duplicates(cluster: str, kube: Any) -> None:
    namespace = new_namespace("cproxy-crash")
    env = {**os.environ, STEP_DELAY_ENV: "30", "CACHEPROXY_RESYNC_SECONDS": "2"}
    cmd = [sys.executable, "-m", "cacheproxy_operator", "--namespace", namespace]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        create_cacheproxy(kube, namespace, "crashy", {"replicas": 1})
        poll(lambda: kube.get("v1", "ConfigMap", namespace, "crashy-config"), timeout=30, what="first child")
        assert kube.get("apps/v1", "StatefulSet", namespace, "crashy") is None  # really half-way
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    config_uid = kube.get("v1", "ConfigMap", namespace, "crashy-config")["metadata"]["uid"]
    env.pop(STEP_DELAY_ENV)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: converged(kube, namespace, "crashy"), what="convergence after restart")
        kids = children(kube, namespace, "crashy")
        counts = {kind: len(objs) for kind, objs in kids.items()}
        assert counts == {
            "ConfigMap": 1,
            "StatefulSet": 1,
            "Service": 2,
            "PodDisruptionBudget": 1,
            "NetworkPolicy": 0,
            "ServiceAccount": 1,
            "Role": 1,
            "RoleBinding": 1,
        }
        assert kids["ConfigMap"][0]["metadata"]["uid"] == config_uid  # adopted, not recreated
        desired = build(
            Owner.from_body(get_cr(kube, namespace, "crashy")),
            with_defaults(get_cr(kube, namespace, "crashy")["spec"]),
            discover(kube),
        ).desired
        assert {m["kind"] for m in desired} - {"ServiceMonitor"} <= set(counts)
    finally:
        terminate(second)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def restricted_kubeconfig(kube: Any, namespace: str, admin_kubeconfig: str, path: Path) -> None:
    """A kubeconfig for a ServiceAccount holding exactly rbac.NAMESPACED_RULES (Role) + CLUSTER_RULES."""
    from cacheproxy_operator import rbac

    sa = "cacheproxy-operator"
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": sa, "namespace": namespace},
            "rules": rbac.NAMESPACED_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": sa, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{sa}-{namespace}"},
            "rules": rbac.CLUSTER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{sa}-{namespace}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{sa}-{namespace}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    ]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
    token = kubectl("create", "token", "-n", namespace, sa).stdout.strip()  # the TokenRequest API
    view = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    view["users"] = [{"name": sa, "user": {"token": token}}]
    view["contexts"][0]["context"]["user"] = sa
    path.write_text(json.dumps(view))


@contextlib.contextmanager
def least_privileged_operator(kube: Any, cluster: str, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The operator in NAMESPACE with exactly the rules in cacheproxy_operator.rbac; yields its log.
    On leaving, it is stopped and the namespace and its RBAC deleted; then its log must show no
    refusal. Not a bare "403": log timestamps carry milliseconds such as ",403". Every refusal from
    the apiserver says Forbidden / forbidden (kopf: APIForbiddenError; the client: "403 Forbidden")."""
    kubeconfig = tmp_path / "kubeconfig"
    restricted_kubeconfig(kube, namespace, cluster, kubeconfig)
    log = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "CACHEPROXY_RESYNC_SECONDS": "2"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cacheproxy_operator", "--namespace", namespace],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        terminate(proc)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        kubectl("delete", "clusterrole,clusterrolebinding", f"cacheproxy-operator-{namespace}", check=False)
    text = log.read_text()
    assert "Forbidden" not in text and "forbidden" not in text, text[-3000:]


def test_operator_needs_no_more_than_its_rbac_rules(cluster: str, kube: Any, tmp_path: Path) -> None:
    """Run with exactly the rules in cacheproxy_operator.rbac: it converges and is never refused."""
    namespace = new_namespace("cproxy-rbac")
    with least_privileged_operator(kube, cluster, namespace, tmp_path) as log:
        create_cacheproxy(kube, namespace, "least", {"networkPolicy": {"enabled": True}})
        poll(lambda: converged(kube, namespace, "least"), what="convergence with least privilege")
        kubectl("delete", "-n", namespace, "networkpolicy/least")
        poll(lambda: kube.get("networking.k8s.io/v1", "NetworkPolicy", namespace, "least"), what="restored")
        patch_spec(kube, namespace, "least", {"networkPolicy": {"enabled": False}})
        poll(
            lambda: kube.get("networking.k8s.io/v1", "NetworkPolicy", namespace, "least") is None,
            what="pruned",
        )
        poll(lambda: converged(kube, namespace, "least"), what="converged after prune")
    text = log.read_text()
    # quiet at the default level: no line per child event or per handler run
    assert "Handler '" not in text and "is processed" not in text, text[-3000:]


KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def finalizers(kube: Any, namespace: str, name: str) -> list[str] | None:
    cr = get_cr(kube, namespace, name)
    return None if cr is None else cr["metadata"].get("finalizers") or []


def test_every_order_of_removal_finishes(cluster: str, kube: Any) -> None:
    """No finalizer on a CacheProxy: deleting one finishes with the operator running or gone (the
    release uninstalled first), and the finalizer an earlier version's kopf timer added is removed."""
    namespace = new_namespace("cproxy-removal")
    cmd = [sys.executable, "-m", "cacheproxy_operator", "--namespace", namespace]
    env = {**os.environ, "CACHEPROXY_RESYNC_SECONDS": "2"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for name in ("first", "second"):
            create_cacheproxy(kube, namespace, name, {"replicas": 1})
        old = {
            "apiVersion": CR[0],
            "kind": CR[1],
            "metadata": {"name": "old", "namespace": namespace, "finalizers": [KOPF_FINALIZER]},
            "spec": {"replicas": 1},
        }
        kube.request("POST", f"/apis/cacheproxy.io/v1alpha1/namespaces/{namespace}/cacheproxies", body=old)
        for name in ("first", "second", "old"):
            poll(lambda name=name: converged(kube, namespace, name), what=f"{name} reconciled")
        poll(lambda: finalizers(kube, namespace, "old") == [], what="the earlier version's finalizer removed")
        assert finalizers(kube, namespace, "first") == [] and finalizers(kube, namespace, "second") == []
        # the CacheProxy first, the operator still running
        kubectl("delete", "cproxy", "-n", namespace, "first", "--timeout=30s")
        assert get_cr(kube, namespace, "first") is None
    finally:
        terminate(proc)
    try:
        # the operator gone first (helm uninstall), then the CacheProxies
        kubectl("delete", "cproxy", "-n", namespace, "second", "old", "--timeout=30s")
        assert get_cr(kube, namespace, "second") is None and get_cr(kube, namespace, "old") is None
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
