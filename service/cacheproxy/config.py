"""The proxy's configuration: a YAML file, then command-line flags on top.

The keys and their meaning are documented in docs/CONTRACT.md; the operator writes the same
file into a ConfigMap.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .backends.address import Address, parse_address
from .ring import settings as ring_settings

ORCAS = ("l1only", "l1l2")


@dataclass
class Chunking:
    enabled: bool = False
    threshold: int = 0  # 0 = just under max_item_size
    chunk_size: int = 0  # 0 = derived from max_item_size
    max_value_size: int = 64 << 20  # the largest value a client may store while chunking is on


@dataclass
class Batching:
    enabled: bool = False
    max_connections: int = 8
    max_batch: int = 64
    flush_us: int = 0


@dataclass
class Config:
    listen: str = "127.0.0.1:11211"
    admin: str = "127.0.0.1:9150"
    batch_listen: str | None = None
    l1: str = "127.0.0.1:11311"
    l2: str | None = None
    orca: str | None = None
    locked: bool = False
    workers: int = 1
    max_item_size: int = 1 << 20
    max_connections: int = 20000
    idle_timeout: float = 0.0
    read_timeout: float = 0.0
    backend_timeout: float = 2.0
    shutdown_grace: float = 25.0
    log_level: str = "info"
    chunking: Chunking = field(default_factory=Chunking)
    batching: Batching = field(default_factory=Batching)
    ring: ring_settings.RingSettings | None = None  # the ``ring:`` section (docs/ring.md)
    ring_self: str | None = None  # --ring-self: overrides ring.self (so does CACHEPROXY_RING_SELF)
    ring_peer_listen: str | None = None  # --ring-peer-listen: overrides ring.peer_listen

    # Where this config came from (file path, flag overrides), for reloads; not a config key.
    source: tuple[str | None, dict[str, Any]] = field(default=(None, {}), compare=False, repr=False)

    @property
    def orca_name(self) -> str:
        return self.orca or ("l1l2" if self.l2 else "l1only")

    @property
    def client_value_limit(self) -> int:
        """The item size the client-side parsers enforce: L1's -I, or more when chunking."""
        return self.chunking.max_value_size if self.chunking.enabled else self.max_item_size

    def address(self, name: str) -> Address:
        return parse_address(getattr(self, name))

    def validate(self) -> Config:
        """Raise ValueError with a message a user can act on."""
        for name in ("listen", "admin", "l1"):
            self.address(name)
        for name in ("l2", "batch_listen"):
            if getattr(self, name):
                self.address(name)
        if self.orca_name not in ORCAS:
            raise ValueError(f"orca must be one of {ORCAS}, not {self.orca!r}")
        if self.orca_name == "l1l2" and not self.l2:
            raise ValueError("orca l1l2 needs an l2 address")
        if self.max_item_size < 1024:
            raise ValueError("max_item_size must be at least 1024")
        c = self.chunking
        # A plain item of `threshold` bytes under a 250-byte key, and a chunk item, must fit L1's -I.
        if c.enabled and (c.threshold < 0 or c.threshold > self.max_item_size - 320
                          or c.chunk_size < 0 or c.chunk_size > self.max_item_size - 128
                          or c.max_value_size < self.max_item_size):
            raise ValueError("chunking: need 0 <= threshold <= max_item_size - 320, "
                             "0 <= chunk_size <= max_item_size - 128, max_value_size >= max_item_size")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        for name in ("idle_timeout", "read_timeout", "backend_timeout", "shutdown_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        return self


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {where} keys: {', '.join(sorted(unknown))}")
    values = {}
    for name, value in data.items():
        nested = {"chunking": Chunking, "batching": Batching}.get(name) if cls is Config else None
        if cls is Config and name == "ring":
            if value is not None:
                self_name = data.get("ring_self") or os.environ.get(ring_settings.SELF_ENV) or None
                value = ring_settings.parse(value, self_name, data.get("ring_peer_listen"))
        elif nested is not None:
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping")
            value = _build(nested, value, name)
        values[name] = value
    return cls(**values)


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read PATH (if given), apply non-None OVERRIDES, validate."""
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config file must be a mapping")
        data.update(loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    if "source" in data:
        raise ValueError("unknown config keys: source")
    config = _build(Config, data, "config").validate()
    config.source = (str(path) if path else None, dict(overrides or {}))
    return config
