"""Names, labels and owner references shared by every child manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cacheproxy_operator import GROUP, KIND, VERSION

MANAGED_BY = "cacheproxy-operator"
APP_NAME = "cacheproxy"
CONFIG_HASH_ANNOTATION = "cacheproxy.io/config-hash"
APPLIED_HASH_ANNOTATION = "cacheproxy.io/applied-hash"
ROLE_LABEL = "cacheproxy.io/service-role"


@dataclass(frozen=True)
class Owner:
    """The CacheProxy a child belongs to (what an owner reference needs)."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def selector_labels(owner: Owner) -> dict[str, str]:
    """The immutable pod selector: name + instance only, so label changes never orphan pods."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": owner.name}


def image_tag(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return tail.split("@", 1)[1].replace(":", "-")[:63]
    return tail.split(":", 1)[1][:63] if ":" in tail else "latest"


def standard_labels(owner: Owner, spec: dict[str, Any], component: str = "cache") -> dict[str, str]:
    return {
        **selector_labels(owner),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": APP_NAME,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": image_tag(spec["proxy"]["image"]),
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    owner: Owner,
    spec: dict[str, Any],
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**standard_labels(owner, spec), **(labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def content_hash(value: Any, length: int = 16) -> str:
    """A stable short hash of any JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def headless_name(owner: Owner) -> str:
    return f"{owner.name}-headless"


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-config"
