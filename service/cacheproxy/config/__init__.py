"""The proxy's configuration: a YAML file, then command-line flags on top.

The keys and their meaning are documented in docs/CONTRACT.md; the operator writes the same
file into a ConfigMap.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..backends.address import Address, parse_address
from ..security.authfile import Credentials
from . import ring as ring_settings

ORCAS = ("l1only", "l1l2")
# [NAMESPACE/]NAME of a ConfigMap: DNS-1123 names (a ConfigMap's name may also hold dots)
CONFIG_MAP_NAME = re.compile(r"(?:[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")


@dataclass
class Chunking:
    enabled: bool = False
    threshold: int = 0  # 0 = just under max_item_size
    chunk_size: int = 0  # 0 = derived from max_item_size
    max_value_size: int = 64 << 20  # the largest value a client may store while chunking is on


@dataclass
class Batching:
    """Clients share a pool of pipelined backend connections (the default, and what the operator
    ships); ``enabled: false`` (``--no-batching``) is Rend's classic layout, a backend connection
    per client."""

    enabled: bool = True
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
    # Security (docs/security.md): TLS on the client port, mTLS with tls_ca, memcached's -Y auth.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None  # set: client certificates are required and verified against it
    tls_handshake_timeout: float = 10.0
    plain_listen: str | None = None  # a second, plaintext client port (memcached's notls:)
    admin_tls_listen: str | None = None  # /metrics over TLS here; the admin port keeps /healthz, /readyz
    auth_file: str | None = None  # memcached -Y format (user:password lines)
    auth_max_failures: int = 10  # failed authentications that close a connection (0: never)
    ring: ring_settings.RingSettings | None = None  # the ``ring:`` section (docs/ring.md)
    ring_self: str | None = None  # --ring-self: overrides ring.self (so does CACHEPROXY_RING_SELF)
    ring_peer_listen: str | None = None  # --ring-peer-listen: overrides ring.peer_listen
    # --config-map [NAMESPACE/]NAME: also watch this ConfigMap through the Kubernetes API (kubewatch.py),
    # its key config_map_key (default: the config file's name) holding this same file's text.
    config_map: str | None = None
    config_map_key: str | None = None

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
        for name in ("l2", "batch_listen", "plain_listen", "admin_tls_listen"):
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
        self.validate_security()
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        for name in ("idle_timeout", "read_timeout", "backend_timeout", "shutdown_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.config_map is not None and not CONFIG_MAP_NAME.fullmatch(self.config_map):
            raise ValueError(f"config_map must be [NAMESPACE/]NAME of a ConfigMap, not {self.config_map!r}")
        if self.config_map_key is not None and not CONFIG_MAP_KEY.fullmatch(self.config_map_key):
            raise ValueError(f"config_map_key is not a ConfigMap key: {self.config_map_key!r}")
        return self

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert)

    def validate_security(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if (self.tls_ca or self.admin_tls_listen) and not self.tls_cert:
            raise ValueError("tls_ca and admin_tls_listen need tls_cert and tls_key")
        if self.plain_listen and not self.tls_cert:
            raise ValueError("plain_listen is the plaintext port beside a TLS listen port: it needs tls_cert")
        for name in ("tls_cert", "tls_key", "tls_ca", "auth_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        for name in ring_settings.PEER_TLS_KEYS if self.ring is not None else ():
            path = getattr(self.ring, name)
            if path and not Path(path).is_file():
                raise ValueError(f"ring.{name}: {path} is not a readable file")
        if self.auth_file:
            Credentials.load(self.auth_file)  # memcached refuses to start on a malformed file, so do we
        if self.tls_handshake_timeout <= 0:
            raise ValueError("tls_handshake_timeout must be positive")
        if self.auth_max_failures < 0:
            raise ValueError("auth_max_failures must not be negative")


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
    return load_text(Path(path).read_text() if path else None, path, overrides)


def load_text(text: str | None, path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """TEXT as the content of the config file PATH (e.g. the same file as a watched ConfigMap holds
    it), with non-None OVERRIDES applied, validated."""
    data: dict[str, Any] = {}
    if text is not None:
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config file must be a mapping")
        data.update(loaded)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:  # a nested key, e.g. batching.enabled from --no-batching
            section, name = key.split(".", 1)
            nested = data.setdefault(section, {})
            if not isinstance(nested, dict):
                raise ValueError(f"{section} must be a mapping")
            nested[name] = value
        else:
            data[key] = value
    if "source" in data:
        raise ValueError("unknown config keys: source")
    config = _build(Config, data, "config").validate()
    if config.config_map and not path:
        raise ValueError("config_map (--config-map) needs a config file (--config): the file is read at start "
                         "and is the fallback while the watch is down")
    config.source = (str(path) if path else None, dict(overrides or {}))
    return config
