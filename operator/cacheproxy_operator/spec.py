"""The CacheProxy spec: defaults taken from the packaged CRD, and the checks a schema cannot express.

The CRD is the single source of truth for defaults; applying them here too means the builders see a
complete spec even for objects stored before a default was added (and in unit tests, without a server).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

_QUANTITY = re.compile(r"^([1-9][0-9]*)(Mi|Gi|Ti)$")
_UNIT_MIB = {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
# memcached flags the operator sets itself; overriding them in extraArgs would break the pod wiring.
_RESERVED_MEMCACHED_FLAGS = {
    "-s",
    "--unix-socket",
    "-p",
    "--port",
    "-l",
    "--listen",
    "-m",
    "--memory-limit",
    "-I",
    "--max-item-size",
    "-t",
    "--threads",
    "-c",
    "--conn-limit",
    "-a",
    "--unix-mask",
    "-U",
    "--udp-port",
    "-d",
    "--daemon",
}


@cache
def crd() -> dict[str, Any]:
    """The CustomResourceDefinition shipped in the package (crd/cacheproxies.yaml)."""
    text = resources.files("cacheproxy_operator").joinpath("crd/cacheproxies.yaml").read_text()
    return yaml.safe_load(text)


def spec_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """VALUE with the schema's defaults filled in, the way the apiserver's structural defaulting does."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = _defaulted(sub, out[key])
        return out
    if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
        return [_defaulted(schema["items"], item) for item in value]
    return value


# The tier's image when the operator runs without the chart's environment: the project image (its
# Dockerfile installs memcached too, so one image serves both containers).
DEFAULT_IMAGE = "ghcr.io/cacheproxy/cacheproxy:0.1.0"
IMAGE_ENV, PULL_POLICY_ENV, PULL_SECRETS_ENV = (
    "CACHEPROXY_TIER_IMAGE",
    "CACHEPROXY_TIER_IMAGE_PULL_POLICY",
    "CACHEPROXY_TIER_IMAGE_PULL_SECRETS",
)


@dataclass(frozen=True)
class ImageDefaults:
    """The image, pull policy and pull secrets a spec gets when it names none (the chart sets them)."""

    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ImageDefaults:
        secrets = tuple(s.strip() for s in env.get(PULL_SECRETS_ENV, "").split(",") if s.strip())
        return cls(
            image=env.get(IMAGE_ENV) or DEFAULT_IMAGE,
            pull_policy=env.get(PULL_POLICY_ENV) or "IfNotPresent",
            pull_secrets=secrets,
        )


def with_defaults(spec: dict[str, Any] | None, images: ImageDefaults = ImageDefaults()) -> dict[str, Any]:
    """SPEC completed with every CRD default and the operator's image defaults (input not modified)."""
    out = _defaulted(spec_schema(), copy.deepcopy(spec or {}))
    for part in ("memcached", "proxy"):
        out[part].setdefault("image", images.image)
        out[part].setdefault("imagePullPolicy", images.pull_policy)
    if not out.get("imagePullSecrets") and images.pull_secrets:
        out["imagePullSecrets"] = [{"name": name} for name in images.pull_secrets]
    out["proxy"].setdefault("workers", workers_for_cpu(out["proxy"].get("resources") or {}))
    return out


def workers_for_cpu(resources_: Mapping[str, Any]) -> int:
    """One proxy process per whole core the proxy container may use: its CPU limit, else its
    request; at least one. A batched proxy process keeps one core busy at most, and on the 2-core
    bench host a second process gave 1.09x the requests per second at the same CPU per request
    (docs/benchmarks.md), so a process per core is what the container's CPU can feed."""
    for kind in ("limits", "requests"):
        cpu = (resources_.get(kind) or {}).get("cpu")
        if cpu is not None:
            try:
                return max(1, min(64, int(parse_quantity(str(cpu)) + 1e-9)))
            except ValueError:
                return 1  # semantic_errors reports the quantity
    return 1


def mebibytes(quantity: str) -> int:
    """'10Gi' -> 10240. Only the Mi/Gi/Ti forms the CRD admits for sizes."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"not a Mi/Gi/Ti quantity: {quantity!r}")
    return int(match.group(1)) * _UNIT_MIB[match.group(2)]


def l2_volume_size(spec: dict[str, Any]) -> str:
    """The L2 volume size: storage.size, or extstoreSize plus 10 % headroom for memcached's own files."""
    l2 = spec["l2"]
    size = l2["storage"].get("size")
    if size:
        return size
    return f"{-(-mebibytes(l2['extstoreSize']) * 11 // 10)}Mi"


def effective_orca(spec: dict[str, Any]) -> str:
    orca = spec["proxy"]["orca"]
    if orca == "auto":
        return "l1l2" if spec["l2"]["enabled"] else "l1only"
    return orca


def _memory_limit_mib(resources_: dict[str, Any]) -> float | None:
    limit = (resources_ or {}).get("limits", {}).get("memory")
    if limit is None:
        return None
    return parse_quantity(str(limit)) / (1 << 20)


def parse_quantity(text: str) -> float:
    """A Kubernetes resource quantity as a number (bytes, cores, ...)."""
    match = re.fullmatch(r"([+-]?[0-9.]+)([a-zA-Z]*)", text.strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = float(match.group(1)), match.group(2)
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    decimal = {
        "": 1,
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    if suffix in binary:
        return number * binary[suffix]
    if suffix in decimal:
        return number * decimal[suffix]
    if suffix[:1] in "eE" and suffix[1:].lstrip("+-").isdigit():
        return number * 10 ** int(suffix[1:])
    raise ValueError(f"not a quantity: {text!r}")


def memcached_reserved_connections(threads: int) -> int:
    """Connections memcached keeps for itself out of ``-c``: with -c 64 it serves 52 clients at -t 1,
    40 at -t 4 and, with -c 200, 128 at -t 16 (measured on 1.6.18), then answers ``ERROR Too many open
    connections`` and closes."""
    return 8 + 4 * threads


def _connection_budget_errors(memcached: dict[str, Any], proxy: dict[str, Any]) -> list[str]:
    """Every backend connection the proxy may open must fit each memcached's ``-c``: a connection
    over it is refused, and the clients behind it get SERVER_ERROR. Per proxy process: one health
    check, plus the batched pool, or with batching off one connection per client."""
    batching = proxy["batching"]
    per_process = batching["maxConnections"] if batching["enabled"] else proxy["maxConnections"]
    needed = proxy["workers"] * (per_process + 1) + memcached_reserved_connections(memcached["threads"])
    if memcached["maxConnections"] >= needed:
        return []
    if batching["enabled"]:
        why, knob = "the batched pools", "proxy.batching.maxConnections"
    else:
        why = "proxy.batching.enabled is false, so every client connection holds a memcached connection of its own"
        knob = "proxy.maxConnections"
    return [f"memcached.maxConnections {memcached['maxConnections']} is below the {needed} the proxy may need "
            f"({why}: proxy.workers x (connections per worker + 1 health check) + memcached's own "
            f"8 + 4 x threads); raise it, or lower {knob} or proxy.workers"]


def semantic_errors(spec: dict[str, Any]) -> list[str]:
    """Problems in a schema-valid (defaulted) spec that would produce a broken tier. Empty when fine."""
    errors: list[str] = []
    memcached, l2, proxy = spec["memcached"], spec["l2"], spec["proxy"]
    if spec["replicas"] < 1:  # stored before the schema's minimum: the ring needs a member
        errors.append("replicas must be at least 1 (every pod is a ring member; a ring needs one)")
    if proxy["orca"] == "l1l2" and not l2["enabled"]:
        errors.append("proxy.orca is l1l2 but l2.enabled is false")
    if proxy["orca"] == "l1only" and l2["enabled"]:
        errors.append("proxy.orca is l1only but l2.enabled is true (the L2 would never be used)")
    if l2["enabled"] and mebibytes(l2_volume_size(spec)) < mebibytes(l2["extstoreSize"]):
        errors.append(f"l2.storage.size {l2['storage']['size']} is smaller than l2.extstoreSize {l2['extstoreSize']}")
    ports = proxy["ports"]
    used = [("client", ports["client"]), ("metrics", ports["metrics"]), ("peer", ports["peer"])]
    if proxy["batchPort"]["enabled"]:
        used.append(("batch", ports["batch"]))
        if not l2["enabled"]:
            errors.append("proxy.batchPort.enabled needs l2.enabled (the batch orca writes through to L2)")
    if len({port for _, port in used}) != len(used):
        errors.append("proxy.ports must be distinct: " + ", ".join(f"{n}={p}" for n, p in used))
    chunking = proxy["chunking"]
    # The proxy's own limits (cacheproxy.config): a plain item under a 250-byte key and a chunk
    # item must both fit memcached's -I.
    if chunking["enabled"] and chunking["threshold"] > memcached["maxItemSize"] - 320:
        errors.append("proxy.chunking.threshold must be at most memcached.maxItemSize - 320")
    if chunking["enabled"] and chunking["chunkSize"] > memcached["maxItemSize"] - 128:
        errors.append("proxy.chunking.chunkSize must be at most memcached.maxItemSize - 128")
    if memcached["maxItemSize"] > memcached["memoryMiB"] * (1 << 20) // 2:
        errors.append("memcached.maxItemSize must be at most half of memcached.memoryMiB")
    errors.extend(_connection_budget_errors(memcached, proxy))
    for flag in memcached.get("extraArgs", []):
        if flag.split("=", 1)[0] in _RESERVED_MEMCACHED_FLAGS:
            errors.append(f"memcached.extraArgs must not set {flag.split('=', 1)[0]} (the operator sets it)")
    for field, container in (("memcached", memcached), ("l2", l2)):
        if field == "l2" and not l2["enabled"]:
            continue
        try:
            limit = _memory_limit_mib(container.get("resources", {}))
        except ValueError as exc:
            errors.append(f"{field}.resources: {exc}")
            continue
        if limit is not None and limit < container["memoryMiB"]:
            errors.append(
                f"{field}.resources.limits.memory is below {field}.memoryMiB "
                f"({container['memoryMiB']} MiB); memcached would be OOM-killed"
            )
    pdb = spec["podDisruptionBudget"]
    if "maxUnavailable" in pdb and "minAvailable" in pdb:
        errors.append("podDisruptionBudget: set maxUnavailable or minAvailable, not both")
    security = spec["securityContext"]
    if security["runAsNonRoot"] and security["runAsUser"] == 0:
        errors.append("securityContext.runAsUser is 0 while runAsNonRoot is true")
    tls = spec.get("tls")
    if tls is not None and not tls.get("secretName") and not tls.get("issuerRef"):
        errors.append("tls needs secretName (a Secret you provide) or issuerRef (cert-manager issues it)")
    reserved = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    clash = reserved & set(spec.get("podLabels", {}))
    if clash:
        errors.append(f"podLabels must not set {', '.join(sorted(clash))} (used by the pod selector)")
    return errors
