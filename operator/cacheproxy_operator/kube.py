"""A small synchronous Kubernetes REST layer over the official client's ApiClient.

Plain dicts in and out (the same dicts the manifest builders produce), server-side apply, and retries
of the transient answers (409 conflict, 429, 5xx) so one lost race never fails a reconcile.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cacheproxy_operator import FIELD_MANAGER

log = logging.getLogger(__name__)
T = TypeVar("T")

PLURALS = {
    "ConfigMap": "configmaps",
    "Service": "services",
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "ServiceMonitor": "servicemonitors",
    "Certificate": "certificates",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "CacheProxy": "cacheproxies",
    "Event": "events",
}
RETRIABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def retrying(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """CALL, retried with exponential backoff while the server answers a transient status."""
    for attempt in range(attempts):
        try:
            return call()
        except ApiException as exc:
            if exc.status not in RETRIABLE_STATUSES or attempt == attempts - 1:
                raise
            log.info("retrying after HTTP %s (attempt %d/%d)", exc.status, attempt + 1, attempts)
            sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}" if namespace else f"{base}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


def new_api_client() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # read now, not at import
    return client.ApiClient()


class Kube:
    """JSON requests against the API server; every method returns plain dicts."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Iterable[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            # the client serialises JSON bodies itself; an apply-patch (YAML) body goes as JSON text
            payload = body if content_type.endswith("json") else json.dumps(body)
        serialized = self.api.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=payload,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*serialized)
        response.read()
        text = response.data.decode() if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return json.loads(text) if text else {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return retrying(lambda: self.request("GET", object_path(api_version, kind, namespace, name)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        query = []
        if label_selector:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(label_selector.items()))))
        answer = retrying(lambda: self.request("GET", object_path(api_version, kind, namespace), query=query))
        return answer.get("items", [])

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking back fields edited by hand."""
        meta = manifest["metadata"]
        path = object_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        return retrying(
            lambda: self.request(
                "PATCH",
                path,
                body=manifest,
                content_type="application/apply-patch+yaml",
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            )
        )

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return retrying(lambda: self.request("PATCH", path, body=patch, content_type="application/merge-patch+json"))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """True when something was deleted; False when it was already gone."""
        try:
            retrying(
                lambda: self.request(
                    "DELETE",
                    object_path(api_version, kind, namespace, name),
                    body={"propagationPolicy": "Background"},
                )
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def serves(self, group_version: str) -> bool:
        """Whether the server serves GROUP/VERSION (e.g. monitoring.coreos.com/v1) right now."""
        try:
            retrying(lambda: self.request("GET", f"/apis/{group_version}"))
            return True
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise

    def post_event(self, about: dict[str, Any], event_type: str, reason: str, message: str) -> dict[str, Any]:
        """A core/v1 Event on the object ABOUT, as `kubectl describe` and `kubectl get events` show it."""
        meta = about["metadata"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": about["apiVersion"],
                "kind": about["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        return self.request("POST", object_path("v1", "Event", meta["namespace"]), body=event)
