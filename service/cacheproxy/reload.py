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
import contextlib
import dataclasses
import logging
import os
import signal
from typing import TYPE_CHECKING

import yaml

from .config import Config, load
from .metrics.stats import STATS

if TYPE_CHECKING:
    from .app import Runtime

log = logging.getLogger("cacheproxy.reload")

POLL_INTERVAL = 1.0
RESTART_ONLY = ("listen", "admin", "batch_listen", "l1", "l2", "orca", "locked", "workers", "max_item_size",
                "chunking", "batching")
LIVE_RING = ("self_name", "generation", "members", "previous", "phase", "warmup_seconds", "owner_down",
             "down_after", "peer_connections", "probe_interval")


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)  # follows the ConfigMap's symlinks
        return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns
    except OSError:
        return None


class Reloader:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        path, self.overrides = runtime.config.source
        self.path = path or ""
        self.seen = _signature(self.path) if self.path else None

    def start(self) -> list[asyncio.Task]:
        if not self.path:
            return []
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread (embedded use)
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        return [loop.create_task(self.watch())]

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            sig = _signature(self.path)
            if sig is not None and sig != self.seen:
                self.reload("file changed")

    def reload(self, why: str) -> bool:
        """Read, validate and apply the file; True when applied."""
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
        rt, old = self.runtime, self.runtime.config
        keep = {name: getattr(old, name) for name in RESTART_ONLY}
        for name, value in keep.items():
            if getattr(new, name) != value:
                log.warning("config reload: %s changed, which needs a restart (still %r)", name, value)
        if (old.ring is None) != (new.ring is None):
            log.warning("config reload: adding or removing the ring section needs a restart")
            new_ring = old.ring
        elif old.ring is not None and new.ring is not None and new.ring.peer_listen != old.ring.peer_listen:
            log.warning("config reload: ring.peer_listen changed, which needs a restart (still %s)",
                        old.ring.peer_listen)
            new_ring = dataclasses.replace(new.ring, peer_listen=old.ring.peer_listen)
        else:
            new_ring = new.ring
        merged = dataclasses.replace(new, ring=new_ring, **keep)
        merged.source = old.source
        rt.config = merged
        logging.getLogger().setLevel(merged.log_level.upper())
        STATS.client_connections_max = merged.max_connections
        if merged.backend_timeout != old.backend_timeout:
            for pool in rt.pools.values():
                pool.timeout = merged.backend_timeout
                for conn in pool.conns:
                    conn.timeout = merged.backend_timeout
        state = rt.ring_state
        if state is not None and merged.ring is not None:
            state.set_timeout(merged.backend_timeout)
            state.apply(merged.ring)
        log.info("config reloaded (%s)", why)
