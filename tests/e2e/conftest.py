"""Fixtures for the end-to-end tests: the tier running in real pods on the session's node.

`images` builds the project's image with podman and loads it into the node's containerd;
`operator_release` is `helm install` of the chart (the operator runs as a pod under the chart's
ServiceAccount and RBAC, exactly as a user gets it), kept for the tests/e2e package only so no other
operator reconciles the operator tests' objects; `tier` is `kubectl apply` of the README's example
(examples/cacheproxy.yaml) in a fresh namespace, waited for until its pods are Ready, shared by the
package's modules (a test that deletes a pod waits for the tier to be whole again).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.chart.cluster import Cluster, session_cluster
from tests.e2e.images import build_and_load
from tests.support.wait import poll

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cacheproxy"
EXAMPLE = REPO / "examples" / "cacheproxy.yaml"
OPERATOR_NAMESPACE = "cacheproxy-system"
RELEASE = "cacheproxy"
READY_TIMEOUT = 180.0
T = TypeVar("T")




def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def is_ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


@dataclass(frozen=True)
class Tier:
    """A CacheProxy applied from a manifest, and how to reach it."""

    cluster: Cluster
    namespace: str
    name: str

    def pods(self) -> list[dict]:
        selector = f"app.kubernetes.io/name=cacheproxy,app.kubernetes.io/instance={self.name}"
        return get_json(self.cluster, "pods", "-n", self.namespace, "-l", selector)["items"]

    def ready_pods(self) -> list[dict]:
        return [pod for pod in self.pods() if is_ready(pod)]

    def wait_ready(self, count: int, timeout: float = READY_TIMEOUT) -> list[dict]:
        """Exactly COUNT pods, all Ready (none terminating)."""
        def settled() -> list[dict] | None:
            pods = self.pods()
            ready = [pod for pod in pods if is_ready(pod)]
            return ready if len(ready) == count == len(pods) else None
        try:
            return poll(settled, timeout=timeout, what=f"{count} ready pods of {self.name}")
        except AssertionError:
            detail = self.cluster.kubectl("describe", "pods", "-n", self.namespace, check=False).stdout
            selector = f"app.kubernetes.io/instance={self.name}"
            detail += self.cluster.kubectl("logs", "-n", self.namespace, "-l", selector, "-c", "cacheproxy",
                                           "--tail=20", "--prefix", check=False).stdout
            status = self.cluster.kubectl("get", "cacheproxy", self.name, "-n", self.namespace, "-o", "yaml",
                                          check=False).stdout
            raise AssertionError(f"{self.name} not ready:\n{status}\n{detail[-6000:]}") from None

    def service_address(self) -> str:
        service = get_json(self.cluster, "service", self.name, "-n", self.namespace)
        return f"{service['spec']['clusterIP']}:11211"

    def pod_addresses(self) -> dict[str, str]:
        return {pod["metadata"]["name"]: f"{pod['status']['podIP']}:11211" for pod in self.ready_pods()}

    def exec(self, pod: str, container: str, *command: str, check: bool = True) -> str:
        result = self.cluster.kubectl("exec", "-n", self.namespace, pod, "-c", container, "--", *command,
                                      check=check, timeout=60)
        return result.stdout


def new_namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="session")
def e2e_cluster() -> Cluster:
    cluster = session_cluster()
    if not cluster.has_node:
        pytest.fail("the e2e tests load the image into the project's own node: unset CACHEPROXY_TEST_KUBECONFIG",
                    pytrace=False)
    return cluster


@pytest.fixture(scope="session")
def images(e2e_cluster: Cluster) -> list[str]:
    return build_and_load(e2e_cluster)


@pytest.fixture(scope="package")
def operator_release(e2e_cluster: Cluster, images: list[str]) -> Iterator[str]:
    """The chart installed with its defaults; yields the operator's namespace."""
    e2e_cluster.helm("install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace", "--wait",
                     "--timeout", "180s", timeout=240)
    try:
        yield OPERATOR_NAMESPACE
    finally:
        # Every CacheProxy goes first, while the operator still runs to remove its finalizer.
        e2e_cluster.kubectl("delete", "cacheproxies", "--all", "--all-namespaces", "--timeout=120s", check=False,
                            timeout=180)
        e2e_cluster.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", "--timeout", "120s",
                         check=False, timeout=180)


def apply_tier(cluster: Cluster, manifest: dict, namespace: str) -> Tier:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    return Tier(cluster, namespace, manifest["metadata"]["name"])


@pytest.fixture(scope="package")
def tier(e2e_cluster: Cluster, operator_release: str) -> Iterator[Tier]:
    """The README's example, applied unchanged, with all its pods Ready."""
    namespace = new_namespace(e2e_cluster, "e2e")
    example = yaml.safe_load(EXAMPLE.read_text())
    running = apply_tier(e2e_cluster, example, namespace)
    try:
        running.wait_ready(example["spec"]["replicas"])
        yield running
    finally:
        e2e_cluster.kubectl("delete", "cacheproxy", running.name, "-n", namespace, "--timeout=120s", check=False,
                            timeout=180)
        e2e_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
