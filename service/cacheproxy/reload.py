"""Live reconfiguration: the config file is re-read on SIGHUP and when it changes on disk.

The file is polled about once a second by its resolved path, inode, size and mtime, so a
Kubernetes ConfigMap update (an atomic swap of the ``..data`` symlink) is seen. A file that does
not parse or validate is refused (logged, ``cacheproxy_config_reloads_total{result="refused"}``)
and the running config keeps serving. What applies live: the ring (members, generation, phase,
previous, warm-up, owner_down), timeouts, limits and the log level. Listen addresses, backends,
the orca kind, workers, chunking and batching need a restart: a change there is logged and the
running value kept. Each ``--workers`` process runs its own reloader (the parent forwards SIGHUP).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Protocol

import yaml

from .compose import RESTART_KEYS
from .config import Config, load
from .metrics.stats import STATS

log = logging.getLogger("cacheproxy.reload")

POLL_INTERVAL = 1.0
RESTART_ONLY = (*RESTART_KEYS, "tls_cert", "tls_key", "tls_ca", "plain_listen", "admin_tls_listen", "auth_file")
LIVE_RING = ("self_name", "generation", "members", "previous", "phase", "warmup_seconds", "owner_down",
             "down_after", "peer_connections", "probe_interval")


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)  # follows the ConfigMap's symlinks
        return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns
    except OSError:
        return None


class Reconfigurable(Protocol):
    """What a reload changes: the process's current config (``app.Runtime``)."""

    @property
    def config(self) -> Config: ...

    def reconfigure(self, new: Config) -> None:
        """Swap in NEW (restart-only keys already kept at their running values)."""


class Reloader:
    def __init__(self, target: Reconfigurable) -> None:
        self.target = target
        path, self.overrides = target.config.source
        self.path = path or ""
        self.seen = _signature(self.path) if self.path else None

    def start(self) -> list[asyncio.Task]:
        """Poll the file (SIGHUP is the caller's: one handler reloads everything, see app.py)."""
        if not self.path:
            return []
        return [asyncio.get_running_loop().create_task(self.watch())]

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            sig = _signature(self.path)
            if sig is not None and sig != self.seen:
                self.reload("file changed")

    def reload(self, why: str) -> bool:
        """Read, validate and apply the file; True when applied."""
        if not self.path:
            return False
        self.seen = _signature(self.path)
        try:
            new = load(self.path, self.overrides)
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:  # unreadable, invalid, not YAML
            STATS.config_reloads["refused"] += 1
            log.error("config reload (%s) refused, the running config keeps serving: %s", why, exc)
            return False
        self.apply(new, why)
        STATS.config_reloads["ok"] += 1
        return True

    def apply(self, new: Config, why: str) -> None:
        self.target.reconfigure(live_part(self.target.config, new))
        log.info("config reloaded (%s)", why)


def live_part(old: Config, new: Config) -> Config:
    """NEW with every key that needs a restart kept at its running value (each change logged)."""
    keep = {name: getattr(old, name) for name in RESTART_ONLY}
    for name, value in keep.items():
        if getattr(new, name) != value:
            log.warning("config reload: %s changed, which needs a restart (still %r)", name, value)
    if (old.ring is None) != (new.ring is None):
        log.warning("config reload: adding or removing the ring section needs a restart")
        new_ring = old.ring
    elif old.ring is not None and new.ring is not None and new.ring.peer_listen != old.ring.peer_listen:
        log.warning("config reload: ring.peer_listen changed, which needs a restart (still %s)", old.ring.peer_listen)
        new_ring = dataclasses.replace(new.ring, peer_listen=old.ring.peer_listen)
    else:
        new_ring = new.ring
    merged = dataclasses.replace(new, ring=new_ring, **keep)
    merged.source = old.source
    return merged
