"""The tier pods' API access, built without a cluster: a ServiceAccount per CacheProxy, a Role that
reads only the tier's own ConfigMap, its RoleBinding, and a token mounted in the proxy container only.
The same objects are exercised against a real API server in test_proxy_watch.py."""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests import Owner, RingView, build
from cacheproxy_operator.manifests.access import TOKEN_DIR
from cacheproxy_operator.spec import with_defaults

OWNER = Owner(name="cache", namespace="apps", uid="5f1c1e9a-0000-4000-8000-000000000002")


def plan_children(spec: dict[str, Any], ring: RingView | None = None) -> dict[str, dict[str, Any]]:
    plan = build(OWNER, with_defaults(spec), ring=ring)
    return {m["kind"]: m for m in plan.desired if m["kind"] != "Service"}


def test_role_reads_only_the_tiers_configmap() -> None:
    kids = plan_children({})
    assert kids["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cache-config"],
         "verbs": ["get", "list", "watch"]}
    ]
    assert kids["ConfigMap"]["metadata"]["name"] == "cache-config"
    binding = kids["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": kids["Role"]["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cache", "namespace": "apps"}]
    account = kids["ServiceAccount"]
    assert account["metadata"]["name"] == "cache" and account["automountServiceAccountToken"] is False
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert kids[kind]["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid


def test_the_objects_come_before_the_pods_that_use_them() -> None:
    order = [m["kind"] for m in build(OWNER, with_defaults({})).desired]
    assert order.index("ServiceAccount") < order.index("StatefulSet")
    assert order.index("RoleBinding") < order.index("StatefulSet")


def test_only_the_proxy_container_holds_a_token() -> None:
    pod = plan_children({"l2": {"enabled": True}})["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cache"
    assert pod["automountServiceAccountToken"] is False  # no token for the memcached sidecars
    volume = {v["name"]: v for v in pod["volumes"]}["kube-api"]["projected"]
    token = volume["sources"][0]["serviceAccountToken"]
    assert token["path"] == "token" and token["expirationSeconds"] <= 3607  # short-lived, rotated
    assert volume["sources"][1]["configMap"]["name"] == "kube-root-ca.crt"
    assert volume["defaultMode"] == 0o440
    every = pod["initContainers"] + pod["containers"]
    holders = [c["name"] for c in every if any(m["name"] == "kube-api" for m in c.get("volumeMounts", []))]
    assert holders == ["cacheproxy"]
    proxy = {c["name"]: c for c in every}["cacheproxy"]
    mount = {m["name"]: m for m in proxy["volumeMounts"]}["kube-api"]
    assert mount == {"name": "kube-api", "mountPath": TOKEN_DIR, "readOnly": True}
    assert {"name": "CACHEPROXY_CONFIGMAP", "value": "cache-config"} in proxy["env"]


def test_membership_changes_nothing_but_the_configmap() -> None:
    """A ring change (scale, prepare, serve) must not roll the pods nor touch their access."""
    before = plan_children({"replicas": 2}, RingView(generation=1, members=2))
    after = plan_children({"replicas": 2}, RingView(generation=2, members=3, previous=2, phase="prepare"))
    assert before["ConfigMap"] != after["ConfigMap"]
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert before[kind] == after[kind]
    assert before["StatefulSet"]["spec"]["template"] == after["StatefulSet"]["spec"]["template"]
