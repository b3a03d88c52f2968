"""Live reconfiguration: the config file is re-read on SIGHUP and when it changes on disk, and with
``config_map`` (``--config-map``) the same text is also taken from that ConfigMap as soon as the
Kubernetes API reports a change (kubewatch.py).

The file is polled about once a second by its resolved path, inode, size and mtime, so a
Kubernetes ConfigMap update (an atomic swap of the ``..data`` symlink) is seen. Every text, from
either source, takes one path: a text already in force is not applied again (the kubelet's copy
of what the watch already applied), and while the watch is up a file holding one of the watch's
earlier texts is skipped (the kubelet lags the watch and must not undo it). A text that does
not parse or validate is refused (logged, ``cacheproxy_config_reloads_total{result="refused"}``)
and the running config keeps serving; ``cacheproxy_config_updates_total{source,result}`` counts
every text by source and outcome. Flags given on the command line (``--ring-self`` ...) override
every text, as at start. What applies live: the ring (members, generation, phase,
previous, warm-up, owner_down), timeouts, limits and the log level. Listen addresses, backends,
the orca kind, workers, chunking and batching need a restart: a change there is logged and the
running value kept. Each ``--workers`` process runs its own reloader and its own watch (the
parent forwards SIGHUP), as each polls the file itself: no state crosses processes, and ``GET
/ring`` reports the lowest generation of the workers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import os
from typing import Protocol

import yaml

from .compose import RESTART_KEYS
from .config import Config, load_text
from .kubewatch import ConfigMapWatch, Target
from .metrics.stats import STATS

log = logging.getLogger("cacheproxy.reload")

POLL_INTERVAL = 1.0
WATCHED_TEXTS = 64  # digests of the watch's recent texts: a file holding one of them is not newer
# The peer port and its certificates' paths are fixed at start (the files themselves rotate live).
_RING_RESTART_ONLY = ("peer_listen", "peer_tls_cert", "peer_tls_key", "peer_tls_ca")
RESTART_ONLY = (*RESTART_KEYS, "tls_cert", "tls_key", "tls_ca", "plain_listen", "admin_tls_listen", "auth_file",
                "config_map", "config_map_key")
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
    """The file poller, SIGHUP, and (with ``config_map``) the ConfigMap watch, all offering config
    texts to one apply path (:meth:`offer`)."""

    def __init__(self, target: Reconfigurable) -> None:
        self.target = target
        path, self.overrides = target.config.source
        self.path = path or ""
        self.seen = _signature(self.path) if self.path else None
        self.current: str | None = None  # the text in force (or the last refused), as a digest
        if self.path:
            with contextlib.suppress(OSError):
                self.current = _digest(_read(self.path))
        self.watched: collections.deque[str] = collections.deque(maxlen=WATCHED_TEXTS)
        self.watch: ConfigMapWatch | None = None
        config = target.config
        if config.config_map and self.path:
            key = config.config_map_key or os.path.basename(self.path)
            self.watch = ConfigMapWatch(Target.from_environment(config.config_map, key), self.from_watch)

    def start(self) -> list[asyncio.Task]:
        """Poll the file and watch the ConfigMap (SIGHUP is the caller's: one handler reloads
        everything, see app.py)."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self.poll())] if self.path else []
        if self.watch is not None:
            log.info("watching %s through the Kubernetes API", self.watch.target.describe())
            tasks.append(loop.create_task(self.watch.run()))
        return tasks

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            sig = _signature(self.path)
            if sig is not None and sig != self.seen:
                self.seen = sig
                self.offer_file("file", "file changed")

    def reload(self, why: str) -> bool:
        """SIGHUP: read, validate and apply the file; True when applied."""
        if not self.path:
            return False
        self.seen = _signature(self.path)
        return self.offer_file("signal", why)

    def offer_file(self, source: str, why: str) -> bool:
        try:
            text = _read(self.path)
        except OSError as exc:
            return self.refuse(source, why, str(exc))
        return self.offer(text, source, why)

    def from_watch(self, text: str | None, why: str) -> None:
        """The ConfigMap watch's delivery: the key's text, or None when the ConfigMap lacks it."""
        if text is None:
            self.refuse("watch", why, "the ConfigMap has no such key")
            return
        self.offer(text, "watch", why)

    def offer(self, text: str, source: str, why: str) -> bool:
        """Validate and apply TEXT unless it is already in force, or (from the file while the watch is
        up) a text the watch delivered before the one in force: the kubelet's copy lags the watch and
        must not undo it. SIGHUP re-applies an unchanged text. True when applied."""
        digest = _digest(text)
        if source == "watch":
            self.watched.append(digest)
        elif self.watch is not None and self.watch.up and digest in self.watched and digest != self.current:
            STATS.config_updates[(source, "superseded")] += 1
            log.info("config reload (%s) skipped: the watched ConfigMap has a newer text", why)
            return False
        if digest == self.current and source != "signal":
            STATS.config_updates[(source, "unchanged")] += 1
            return False
        self.current = digest
        try:
            new = load_text(text, self.path, self.overrides)
        except (ValueError, TypeError, yaml.YAMLError) as exc:  # invalid, not YAML
            return self.refuse(source, why, str(exc))
        self.apply(new, why)
        STATS.config_reloads["ok"] += 1
        STATS.config_updates[(source, "applied")] += 1
        return True

    def refuse(self, source: str, why: str, problem: str) -> bool:
        STATS.config_reloads["refused"] += 1
        STATS.config_updates[(source, "refused")] += 1
        log.error("config reload (%s) refused, the running config keeps serving: %s", why, problem)
        return False

    def apply(self, new: Config, why: str) -> None:
        self.target.reconfigure(live_part(self.target.config, new))
        log.info("config reloaded (%s)", why)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def live_part(old: Config, new: Config) -> Config:
    """NEW with every key that needs a restart kept at its running value (each change logged)."""
    keep = {name: getattr(old, name) for name in RESTART_ONLY}
    for name, value in keep.items():
        if getattr(new, name) != value:
            log.warning("config reload: %s changed, which needs a restart (still %r)", name, value)
    if (old.ring is None) != (new.ring is None):
        log.warning("config reload: adding or removing the ring section needs a restart")
        new_ring = old.ring
    elif old.ring is not None and new.ring is not None:
        kept = {key: getattr(old.ring, key) for key in _RING_RESTART_ONLY}
        for key, value in kept.items():
            if getattr(new.ring, key) != value:
                log.warning("config reload: ring.%s changed, which needs a restart (still %s)", key, value)
        new_ring = dataclasses.replace(new.ring, **kept)
    else:
        new_ring = new.ring
    merged = dataclasses.replace(new, ring=new_ring, **keep)
    merged.source = old.source
    return merged
