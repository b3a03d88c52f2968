"""The ring: who the members are, and the `ring` section of the proxy's config file.

A CacheProxy NAME in namespace NS has the members NAME-0 .. NAME-(n-1), each named
NAME-i.NAME-headless.NS.svc (what the proxies and ketama clients hash; port 11211, so no suffix) and
reached by the other proxies at NAME-i.NAME-headless.NS.svc:PEER. Membership is a count: the members
are always the first n ordinals of the StatefulSet. Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cacheproxy_operator.manifests.common import Owner, headless_name

MEMBER_PORT = 11211
PHASE_PREPARE, PHASE_SERVE = "prepare", "serve"
# While the operator holds a warm-up open: each proxy counts its window from when it read the serve
# phase, so a fixed window would close early on a proxy that read it early, which would then stop
# removing previous copies while a late proxy still reads them. The window is ended by the settled ring.
WARMUP_HOLD_SECONDS = 86400


def member_name(owner: Owner, ordinal: int) -> str:
    return f"{owner.name}-{ordinal}.{headless_name(owner)}.{owner.namespace}.svc"


def pod_name(owner: Owner, ordinal: int) -> str:
    return f"{owner.name}-{ordinal}"


def member_names(owner: Owner, count: int) -> list[str]:
    return [member_name(owner, i) for i in range(count)]


def members(owner: Owner, count: int, peer_port: int) -> list[dict[str, str]]:
    """The contract's member entries: the hashed name and where that member's proxy takes forwarded requests."""
    return [{"name": name, "peer": f"{name}:{peer_port}"} for name in member_names(owner, count)]


def self_name_template(owner: Owner) -> str:
    """CACHEPROXY_RING_SELF in the pod: the kubelet expands $(POD_NAME) from the downward API."""
    return f"$(POD_NAME).{headless_name(owner)}.{owner.namespace}.svc"


@dataclass(frozen=True)
class RingView:
    """What the proxies are told: generation, phase, the member counts of the new and old rings, and
    whether the warm-up window is held open (until the operator publishes the settled ring)."""

    generation: int = 1
    phase: str = PHASE_SERVE
    members: int = 0
    previous: int = 0
    hold_warmup: bool = False
    close_warmup: bool = False  # the window is over for every proxy (previous still listed)


def _warmup_seconds(spec: dict[str, Any], view: RingView) -> float:
    if view.close_warmup:
        return 0
    return WARMUP_HOLD_SECONDS if view.hold_warmup else spec["ring"]["warmupSeconds"]


def ring_section(owner: Owner, spec: dict[str, Any], view: RingView) -> dict[str, Any]:
    """The `ring` section of the config file (the self name comes from CACHEPROXY_RING_SELF per pod)."""
    peer_port = spec["proxy"]["ports"]["peer"]
    return {
        "generation": view.generation,
        "members": members(owner, view.members, peer_port),
        "previous": members(owner, view.previous, peer_port),
        "phase": view.phase,
        "peer_listen": f"0.0.0.0:{peer_port}",
        "warmup_seconds": _warmup_seconds(spec, view),
        "owner_down": spec["ring"]["ownerDown"],
        "down_wait": spec["ring"]["downWaitSeconds"],
    }
