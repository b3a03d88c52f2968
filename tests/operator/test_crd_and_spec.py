"""The CRD (schema, defaults, chart copy), the examples, and the checks beyond the schema."""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cacheproxy_operator.spec import (
    ImageDefaults,
    crd,
    l2_volume_size,
    memcached_reserved_connections,
    semantic_errors,
    with_defaults,
)

from tests.operator.specs import MAXIMAL_SPEC
from tests.support.procs import start_memcached

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "operator/cacheproxy_operator/crd/cacheproxies.yaml"
CHART_COPY = ROOT / "charts/cacheproxy/crds/cacheproxies.cacheproxy.io.yaml"


def openapi_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def as_json_schema(node: Any) -> Any:
    """The CRD's OpenAPI schema as plain JSON Schema (drop the x-kubernetes markers)."""
    if isinstance(node, dict):
        return {k: as_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [as_json_schema(v) for v in node]
    return node


def check_against_crd(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, as_json_schema(openapi_schema()))


def test_chart_copy_is_identical() -> None:
    assert CHART_COPY.read_bytes() == PACKAGED.read_bytes()


def test_crd_is_a_valid_v1_crd_for_current_kubernetes() -> None:
    assert kubernetes_validate.validate(crd(), "1.33", strict=True) == "1.33"
    version = crd()["spec"]["versions"][0]
    assert crd()["spec"]["names"]["shortNames"] == ["cproxy"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Replicas", "Ready", "Phase", "Ring", "Generation", "Age"]


def test_schema_is_structural_every_node_typed() -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"untyped schema node at {path}"
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(openapi_schema(), "")


@pytest.mark.parametrize("name", ["cacheproxy.yaml", "cacheproxy-l2.yaml"])
def test_examples_are_valid_and_sensible(name: str) -> None:
    example = yaml.safe_load((ROOT / "examples" / name).read_text())
    assert example["apiVersion"] == "cacheproxy.io/v1alpha1" and example["kind"] == "CacheProxy"
    check_against_crd(example)
    assert semantic_errors(with_defaults(example["spec"])) == []


def test_maximal_spec_is_valid() -> None:
    check_against_crd({"apiVersion": "cacheproxy.io/v1alpha1", "kind": "CacheProxy", "spec": MAXIMAL_SPEC})
    assert semantic_errors(with_defaults(MAXIMAL_SPEC)) == []


def test_defaults_fill_nested_objects_without_touching_given_values() -> None:
    spec = with_defaults({"proxy": {"logLevel": "debug"}})
    assert spec["replicas"] == 2
    assert spec["proxy"]["logLevel"] == "debug"
    assert spec["proxy"]["ports"] == {"client": 11211, "metrics": 9150, "batch": 11213, "peer": 11212}
    assert spec["ring"] == {"warmupSeconds": 600, "progressDeadlineSeconds": 300, "ownerDown": "miss",
                            "downWaitSeconds": 30}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["monitoring"]["serviceMonitor"]["interval"] == "30s"
    check_against_crd({"spec": spec})


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"proxy": {"orca": "l1l2"}}, "l2.enabled is false"),
        ({"l2": {"enabled": True}, "proxy": {"orca": "l1only"}}, "never be used"),
        ({"l2": {"enabled": True, "extstoreSize": "20Gi", "storage": {"size": "10Gi"}}}, "smaller than"),
        ({"proxy": {"ports": {"metrics": 11211}}}, "distinct"),
        ({"proxy": {"ports": {"peer": 9150}}}, "distinct"),
        ({"memcached": {"memoryMiB": 512, "resources": {"limits": {"memory": "256Mi"}}}}, "OOM"),
        ({"memcached": {"extraArgs": ["-p", "11211"]}}, "must not set -p"),
        ({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}, "not both"),
        ({"securityContext": {"runAsUser": 0}}, "runAsUser is 0"),
        ({"podLabels": {"app.kubernetes.io/instance": "x"}}, "pod selector"),
        ({"memcached": {"memoryMiB": 16, "maxItemSize": 16777216}}, "half"),
        # batching off: 20,000 clients, each with its own connection, over memcached's default 4,096
        ({"proxy": {"batching": {"enabled": False}}}, "every client connection holds a memcached connection"),
        ({"proxy": {"workers": 64, "batching": {"maxConnections": 1024}}}, "the batched pools"),
    ],
)
def test_semantic_errors(patch: dict[str, Any], fragment: str) -> None:
    spec = with_defaults(patch)
    check_against_crd({"spec": spec})  # schema-valid, yet broken
    errors = semantic_errors(spec)
    assert any(fragment in e for e in errors), errors


def test_a_ring_needs_a_member() -> None:
    assert any("at least 1" in e for e in semantic_errors(with_defaults({"replicas": 0})))
    with pytest.raises(jsonschema.ValidationError):
        check_against_crd({"spec": {"replicas": 0}})


def test_schema_rejects_what_it_can() -> None:
    for bad in (
        {"replicas": -1},
        {"proxy": {"orca": "fast"}},
        {"l2": {"extstoreSize": "10GB"}},
        {"placement": {"antiAffinity": "maybe"}},
        {"monitoring": {"serviceMonitor": {"interval": "soon"}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check_against_crd({"spec": bad})


def test_l2_volume_size_has_headroom() -> None:
    assert l2_volume_size(with_defaults({"l2": {"enabled": True, "extstoreSize": "1Gi"}})) == "1127Mi"
    spec = copy.deepcopy(MAXIMAL_SPEC)
    assert l2_volume_size(with_defaults(spec)) == "24Gi"


def test_connection_budget_is_exact() -> None:
    """Per worker: its clients (batching off) or its pool, plus a health check; then memcached's
    reserve (8 + 4 x threads, measured). One connection short is an error, exactly enough is not."""
    def spec(max_conns: int) -> dict[str, Any]:
        return with_defaults({
            "memcached": {"maxConnections": max_conns, "threads": 2},
            "proxy": {"workers": 3, "maxConnections": 1000, "batching": {"enabled": False}},
        })

    needed = 3 * (1000 + 1) + 8 + 4 * 2
    assert semantic_errors(spec(needed)) == []
    assert any("below the 3019" in e for e in semantic_errors(spec(needed - 1)))


@pytest.mark.parametrize("threads", [1, 4])
def test_memcached_reserve_matches_the_real_memcached(threads: int) -> None:
    """The budget's reserve is memcached's own: with -c 64 it serves exactly 64 - reserve clients."""
    proc = start_memcached(args=["-c", "64", "-t", str(threads)])
    host, port = proc.addr.rsplit(":", 1)
    socks: list[socket.socket] = []
    try:
        while len(socks) <= 64:
            sock = socket.create_connection((host, int(port)), timeout=5)
            socks.append(sock)
            sock.sendall(b"version\r\n")
            answer = sock.recv(100)
            if not answer.startswith(b"VERSION "):
                assert answer == b"ERROR Too many open connections\r\n"
                break
        assert len(socks) - 1 == 64 - memcached_reserved_connections(threads)
    finally:
        for sock in socks:
            sock.close()
        proc.stop()


def test_the_tier_image_comes_from_the_operator_for_both_containers() -> None:
    images = ImageDefaults.from_env(
        {
            "CACHEPROXY_TIER_IMAGE": "registry.example/cacheproxy:1.2.3",
            "CACHEPROXY_TIER_IMAGE_PULL_POLICY": "Always",
            "CACHEPROXY_TIER_IMAGE_PULL_SECRETS": "regcred, other",
        }
    )
    spec = with_defaults({}, images)
    for part in ("memcached", "proxy"):
        assert spec[part]["image"] == "registry.example/cacheproxy:1.2.3"
        assert spec[part]["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    own = with_defaults({"memcached": {"image": "memcached:1.6.38"}, "imagePullSecrets": [{"name": "mine"}]}, images)
    assert own["memcached"]["image"] == "memcached:1.6.38" and own["proxy"]["image"] == images.image
    assert own["imagePullSecrets"] == [{"name": "mine"}]
    assert ImageDefaults.from_env({}) == ImageDefaults()
    assert with_defaults({})["memcached"]["image"] == with_defaults({})["proxy"]["image"]


@pytest.mark.parametrize(
    ("resources", "workers"),
    [
        ({}, 1),
        ({"requests": {"cpu": "100m"}}, 1),
        ({"requests": {"cpu": "2"}}, 2),
        ({"requests": {"cpu": "1"}, "limits": {"cpu": "3500m"}}, 3),
        ({"limits": {"cpu": "200"}}, 64),
    ],
    ids=["none", "a fraction", "request", "limit wins, whole cores", "capped at the schema's maximum"],
)
def test_workers_follow_the_proxy_containers_cpu(resources: dict, workers: int) -> None:
    assert with_defaults({"proxy": {"resources": resources}})["proxy"]["workers"] == workers


def test_workers_given_are_kept_whatever_the_cpu() -> None:
    spec = {"proxy": {"workers": 1, "resources": {"limits": {"cpu": "4"}}}}
    assert with_defaults(spec)["proxy"]["workers"] == 1
