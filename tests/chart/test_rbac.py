"""The chart grants the operator exactly the API access it uses: cacheproxy_operator.rbac.RULES.

Rules are compared as sets of (apiGroup, resource, verb) triples, so the grouping of rules may differ but
not one verb more or less is allowed, in both the cluster-wide and the single-namespace mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.chart.helm import VALUES_MAX, by_kind, documents, one, render

Triple = tuple[str, str, str]

# Cluster-scoped resources: in single-namespace mode they can only be granted by a ClusterRole.
CLUSTER_SCOPED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}


def triples(rules: Iterable[Mapping]) -> set[Triple]:
    out: set[Triple] = set()
    for rule in rules:
        groups = rule.get("apiGroups", rule.get("api_groups"))
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in groups:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def operator_triples() -> set[Triple]:
    from cacheproxy_operator.rbac import RULES

    return triples(RULES)


def test_cluster_wide_mode_grants_exactly_the_operator_rules() -> None:
    docs = documents(render())
    assert not by_kind(docs, "Role")
    granted = triples(one(docs, "ClusterRole")["rules"])
    assert granted == operator_triples()
    assert "*" not in {part for triple in granted for part in triple}


def test_single_namespace_mode_grants_the_same_rules_split_by_scope() -> None:
    docs = documents(render(values=[VALUES_MAX]))
    namespaced = triples(one(docs, "Role")["rules"])
    cluster = triples(one(docs, "ClusterRole")["rules"])
    assert namespaced | cluster == operator_triples()
    assert {(group, resource) for group, resource, _ in cluster} <= CLUSTER_SCOPED
    assert not {(group, resource) for group, resource, _ in namespaced} & CLUSTER_SCOPED


def kopf_watched() -> set[str]:
    """Resources kopf lists and watches: the CacheProxies, the built-in child kinds (handlers.py), and for
    its own bookkeeping CRDs and namespaces."""
    from cacheproxy_operator import PLURAL
    from cacheproxy_operator.handlers import CHILD_RESOURCES

    return {PLURAL, "customresourcedefinitions", "namespaces", *(plural for _, plural in CHILD_RESOURCES)}


def verbs(granted: set[Triple], group: str, resource: str) -> set[str]:
    return {verb for g, r, verb in granted if (g, r) == (group, resource)}


def test_watch_is_granted_only_on_what_kopf_watches() -> None:
    """ServiceMonitors and Certificates (other projects' CRDs, kept right by the resync instead) and the
    Deployment of an earlier version are never watched: each gets the verbs of the calls made on it."""
    granted = triples(one(documents(render()), "ClusterRole")["rules"])
    assert {resource for _, resource, verb in granted if verb == "watch"} == kopf_watched()
    # reconcile.ensure: get, then server-side apply (a PATCH that creates what is missing); prune: list, delete
    resynced = {"get", "list", "create", "patch", "delete"}
    assert verbs(granted, "monitoring.coreos.com", "servicemonitors") == resynced
    assert verbs(granted, "cert-manager.io", "certificates") == resynced
    assert verbs(granted, "apps", "deployments") == {"get", "delete"}  # reconcile.migrate_deployment


def test_delete_is_granted_only_on_what_the_operator_deletes() -> None:
    """reconcile.prune deletes the optional children a spec turns off, reconcile.migrate_deployment the
    Deployment of an earlier version. Everything else the operator makes goes with its CacheProxy
    through ownerReferences: the garbage collector deletes it, not the operator. Pods are listed and
    watched, never read one by one."""
    granted = triples(one(documents(render()), "ClusterRole")["rules"])
    deleted = {resource for _, resource, verb in granted if verb == "delete"}
    assert deleted == {"poddisruptionbudgets", "networkpolicies", "servicemonitors", "certificates", "deployments"}
    assert verbs(granted, "", "pods") == {"list", "watch"}


def test_bindings_name_the_operator_service_account() -> None:
    docs = documents(render(values=[VALUES_MAX]))
    account = one(docs, "ServiceAccount")["metadata"]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = one(docs, kind)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                        "namespace": account["namespace"]}]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]
