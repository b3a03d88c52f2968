"""What the tier's pods may do on the Kubernetes API: read their own config ConfigMap, nothing else.

The proxy watches the ConfigMap NAME-config through the API (``CACHEPROXY_CONFIGMAP``), so a ring
change reaches it within a second instead of at the kubelet's next sync of the mounted file (which
stays the fallback). For that each CacheProxy gets:

- ServiceAccount NAME, with ``automountServiceAccountToken: false``;
- Role NAME-read-config: get, list and watch on ``configmaps`` with ``resourceNames: [NAME-config]``
  (a list or watch is then allowed only with the field selector ``metadata.name=NAME-config``);
- RoleBinding NAME-read-config binding that Role to that ServiceAccount.

The pods run as that ServiceAccount and keep ``automountServiceAccountToken: false``: only the proxy
container mounts a projected volume at the standard path with a short-lived, audience-bound token
(rotated by the kubelet; the proxy re-reads it at every reconnect), the cluster's CA
(``kube-root-ca.crt``) and the namespace. memcached's containers hold no credentials. Nothing here
depends on membership, so none of it changes the pod template during a ring change.
"""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests.common import Owner, config_map_name, metadata

RBAC_API = "rbac.authorization.k8s.io/v1"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME = "kube-api"
TOKEN_SECONDS = 3607  # the kubelet renews the token at 80% of its life
CONFIG_MAP_ENV = "CACHEPROXY_CONFIGMAP"
READ_VERBS = ["get", "list", "watch"]


def service_account_name(owner: Owner) -> str:
    return owner.name


def role_name(owner: Owner) -> str:
    return f"{owner.name}-read-config"


def service_account(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(owner, spec, service_account_name(owner)),
        "automountServiceAccountToken": False,
    }


def role_rules(owner: Owner) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [config_map_name(owner)],
            "verbs": list(READ_VERBS),
        }
    ]


def role(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": metadata(owner, spec, role_name(owner)),
        "rules": role_rules(owner),
    }


def role_binding(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": metadata(owner, spec, role_name(owner)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name(owner)},
        "subjects": [{"kind": "ServiceAccount", "name": service_account_name(owner), "namespace": owner.namespace}],
    }


def token_volume() -> dict[str, Any]:
    """The token, CA and namespace, as the kubelet's own kube-api-access volume has them."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "defaultMode": 0o440,  # owner and group (the pod's fsGroup, the proxy's group) only
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }


def token_mount() -> dict[str, Any]:
    return {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}


def config_map_env(owner: Owner) -> dict[str, Any]:
    """The proxy watches its ConfigMap (in the pod's own namespace)."""
    return {"name": CONFIG_MAP_ENV, "value": config_map_name(owner)}


def access(owner: Owner, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The three objects, in apply order (the pods need the ServiceAccount to be created)."""
    return [service_account(owner, spec), role(owner, spec), role_binding(owner, spec)]
