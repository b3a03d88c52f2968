"""The exact API permissions the operator uses, as data the Helm chart renders and a test compares.

Namespaced rules go into a ClusterRole (cluster-wide mode) or a Role per watched namespace
(single-namespace mode); CLUSTER_RULES are cluster-scoped reads kopf needs in both modes to notice
CRDs appearing (e.g. ServiceMonitor installed later) and, cluster-wide, namespaces.
"""

from __future__ import annotations

from typing import Any

# Children the operator keeps but never deletes itself: server-side apply (a PATCH that may create)
# after a get; kopf lists and watches them. When their CacheProxy goes, Kubernetes' garbage collector
# deletes them through their ownerReferences, not the operator.
CHILD_VERBS = ["get", "list", "watch", "create", "patch"]
# Optional children (spec switches them off): reconcile.prune lists and deletes those it owns.
PRUNED_CHILD_VERBS = [*CHILD_VERBS, "delete"]
READ_VERBS = ["get", "list", "watch"]
# Children of other projects' CRDs (ServiceMonitor, Certificate): not watched, the resync keeps them
# right (handlers.py), so no watch: get + server-side apply (patch, create) in reconcile.ensure, list
# + delete in reconcile.prune.
RESYNCED_VERBS = ["get", "list", "create", "patch", "delete"]

NAMESPACED_RULES: list[dict[str, Any]] = [
    # the CacheProxy itself: kopf keeps its progress in annotations (patch); status via the subresource
    {
        "apiGroups": ["cacheproxy.io"],
        "resources": ["cacheproxies"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": ["cacheproxy.io"], "resources": ["cacheproxies/status"], "verbs": ["get", "patch"]},
    # children: server-side apply is a PATCH that may create
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": CHILD_VERBS},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": CHILD_VERBS},
    # the Deployment an earlier version made: read and removed once its StatefulSet replacement is
    # ready (reconcile.migrate_deployment); not watched, never listed
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": PRUNED_CHILD_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": PRUNED_CHILD_VERBS},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"], "verbs": RESYNCED_VERBS},
    {"apiGroups": ["cert-manager.io"], "resources": ["certificates"], "verbs": RESYNCED_VERBS},
    # the tier pods' ServiceAccount, and the Role + RoleBinding letting them read their own ConfigMap
    # (the API server lets the operator grant get/list/watch on configmaps because it holds them)
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": CHILD_VERBS},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": CHILD_VERBS},
    # secrets: get only, each one by the name a CacheProxy's spec.tls / spec.auth gives (no list,
    # no watch: the operator never sees other Secrets' content; a Secret created later is noticed
    # at the next resync)
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    # pods: listed for readiness, IPs and ring reports (status.endpoints), watched by kopf; never read
    # one by one
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    # events on the CacheProxy
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]

CLUSTER_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": READ_VERBS},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ_VERBS},
]

RULES: list[dict[str, Any]] = NAMESPACED_RULES + CLUSTER_RULES
"""Everything, for one ClusterRole in cluster-wide (--all-namespaces) mode."""
