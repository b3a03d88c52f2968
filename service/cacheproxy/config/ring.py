"""The ``ring:`` section of the config file, parsed and validated (see docs/ring.md).

Sans-IO: a mapping in, a :class:`RingSettings` out, or a ValueError whose message names the
offending key. The self name may be overridden by ``--ring-self`` or ``CACHEPROXY_RING_SELF``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backends.address import parse_address

PHASES = ("prepare", "serve")
OWNER_DOWN = ("miss", "error")
SELF_ENV = "CACHEPROXY_RING_SELF"


@dataclass(frozen=True)
class Member:
    name: str  # what is hashed: a client's server string (host, or host:port if port != 11211)
    peer: str  # HOST:PORT of that member's peer port


@dataclass
class RingSettings:
    self_name: str = ""
    generation: int = 0
    members: list[Member] = field(default_factory=list)
    previous: list[Member] = field(default_factory=list)
    phase: str = "serve"
    peer_listen: str = "0.0.0.0:11212"
    warmup_seconds: float = 600.0
    owner_down: str = "miss"
    # Small details of this proxy's own (not in the operator contract; defaults suit it):
    down_after: int = 3  # consecutive failed forwarded requests that mark a member down
    peer_connections: int = 4  # pooled, pipelined connections to each peer
    probe_interval: float = 0.25  # how often a down member is asked whether it is back
    # How long requests that must reach a member wait for it after it went down (a pod replaced by
    # a rolling update is away for seconds); 0 answers them at once (docs/ring.md).
    down_wait: float = 30.0
    # While a change warms up, push the keys this member no longer owns to their new owners
    # (ring/handover.py); off, only reads in the window move keys.
    handover: bool = True
    # mTLS between members (all three or none): the peer port requires a certificate signed by
    # peer_tls_ca, and this proxy presents peer_tls_cert when it forwards (docs/security.md).
    peer_tls_cert: str | None = None
    peer_tls_key: str | None = None
    peer_tls_ca: str | None = None

    @property
    def peer_tls(self) -> bool:
        return bool(self.peer_tls_cert)


_KEYS = {"self": "self_name", "generation": "generation", "members": "members", "previous": "previous",
         "phase": "phase", "peer_listen": "peer_listen", "warmup_seconds": "warmup_seconds",
         "owner_down": "owner_down", "down_after": "down_after", "peer_connections": "peer_connections",
         "probe_interval": "probe_interval", "down_wait": "down_wait", "handover": "handover",
         "peer_tls_cert": "peer_tls_cert",
         "peer_tls_key": "peer_tls_key",
         "peer_tls_ca": "peer_tls_ca"}
PEER_TLS_KEYS = ("peer_tls_cert", "peer_tls_key", "peer_tls_ca")


def _members(value: Any, where: str) -> list[Member]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of {{name, peer}}")
    out: list[Member] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"name", "peer"} or not item.get("name") \
                or not item.get("peer"):
            raise ValueError(f"{where}[{i}] must be a mapping with a name and a peer (and nothing else)")
        name, peer = str(item["name"]), str(item["peer"])
        if name in seen:
            raise ValueError(f"{where}: member {name!r} is listed twice")
        if any(c.isspace() for c in name):
            raise ValueError(f"{where}[{i}].name {name!r} must not contain whitespace")
        try:
            address = parse_address(peer)
        except ValueError as exc:
            raise ValueError(f"{where}[{i}].peer: {exc}") from None
        if address.is_unix:
            raise ValueError(f"{where}[{i}].peer must be HOST:PORT, not a unix socket")
        seen.add(name)
        out.append(Member(name, peer))
    return out


def parse(data: Any, self_override: str | None = None, peer_listen_override: str | None = None) -> RingSettings:
    """The ``ring`` mapping as RingSettings; raise ValueError with a message a user can act on."""
    if not isinstance(data, dict):
        raise ValueError("ring must be a mapping")
    unknown = set(data) - set(_KEYS)
    if unknown:
        raise ValueError(f"unknown ring keys: {', '.join(sorted(unknown))}")
    s = RingSettings()
    for key, attr in _KEYS.items():
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if key in ("members", "previous"):
            value = _members(value, f"ring.{key}")
        elif key in ("generation", "down_after", "peer_connections"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ring.{key} must be an integer, not {value!r}")
        elif key in ("warmup_seconds", "probe_interval", "down_wait"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"ring.{key} must be a number of seconds, not {value!r}")
            value = float(value)
        elif key == "handover":
            if not isinstance(value, bool):
                raise ValueError(f"ring.handover must be true or false, not {value!r}")
        else:
            value = str(value)
        setattr(s, attr, value)
    if self_override:
        s.self_name = self_override
    if peer_listen_override:
        s.peer_listen = peer_listen_override
    return validate(s)


def validate(s: RingSettings) -> RingSettings:
    if not s.self_name:
        raise ValueError(f"ring.self is empty: set ring.self, --ring-self or {SELF_ENV}")
    if not s.members:
        raise ValueError("ring.members must list at least one member")
    if s.phase not in PHASES:
        raise ValueError(f"ring.phase must be one of {PHASES}, not {s.phase!r}")
    if s.phase == "prepare" and not s.previous:
        raise ValueError("ring.phase prepare needs ring.previous (the ring before the change)")
    if s.owner_down not in OWNER_DOWN:
        raise ValueError(f"ring.owner_down must be one of {OWNER_DOWN}, not {s.owner_down!r}")
    if s.generation < 0:
        raise ValueError("ring.generation must not be negative")
    if s.warmup_seconds < 0 or s.down_wait < 0:
        raise ValueError("ring.warmup_seconds and ring.down_wait must not be negative")
    if s.down_after < 1 or s.peer_connections < 1 or s.probe_interval <= 0:
        raise ValueError("ring.down_after and ring.peer_connections must be >= 1, ring.probe_interval > 0")
    try:
        if parse_address(s.peer_listen).is_unix:
            raise ValueError("a unix socket")
    except ValueError as exc:
        raise ValueError(f"ring.peer_listen must be HOST:PORT ({exc})") from None
    given = [key for key in PEER_TLS_KEYS if getattr(s, key)]
    if given and len(given) != len(PEER_TLS_KEYS):
        missing = ", ".join(f"ring.{key}" for key in PEER_TLS_KEYS if key not in given)
        raise ValueError(f"ring.peer_tls_cert, ring.peer_tls_key and ring.peer_tls_ca go together (missing {missing})")
    peers: dict[str, str] = {}
    for m in s.members + s.previous:
        if peers.setdefault(m.name, m.peer) != m.peer:
            raise ValueError(f"ring: member {m.name!r} has two peer addresses ({peers[m.name]}, {m.peer})")
    return s
