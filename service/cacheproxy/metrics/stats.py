"""Hot-path counters.

Bumping a Prometheus client metric takes a lock and several attribute look-ups; a request pays
for that on every command. Here a request only adds to plain ints and dicts owned by one
process-wide :data:`STATS` object; :mod:`cacheproxy.metrics.collector` reads them when
``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Final

# The clock requests are timed by. Not ``loop.time()``: uvloop's clock counts whole milliseconds,
# too coarse for sub-millisecond buckets. ``time.monotonic`` reads CLOCK_MONOTONIC; libuv reads its
# coarse variant, which counts from the same origin, so the two agree to within a few milliseconds.
clock: Final = time.monotonic

# Latency buckets (seconds) for cacheproxy_request_duration_seconds.
BUCKETS: Final = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


def bucket(seconds: float) -> int:
    """``bisect.bisect_left(BUCKETS, seconds)`` as a search tree of four comparisons: compiled,
    these compare native floats, where a call to ``bisect`` boxes the float and compares objects
    (tests check the two agree at and around every bound)."""
    if seconds <= 0.001:
        if seconds <= 0.0001:
            return 0 if seconds <= 0.00005 else 1
        if seconds <= 0.00025:
            return 2
        return 3 if seconds <= 0.0005 else 4
    if seconds <= 0.025:
        if seconds <= 0.005:
            return 5 if seconds <= 0.0025 else 6
        return 7 if seconds <= 0.01 else 8
    if seconds <= 0.25:
        if seconds <= 0.1:
            return 9 if seconds <= 0.05 else 10
        return 11
    if seconds <= 5.0:
        return 12 if seconds <= 1.0 else 13
    return 14


class Histogram:
    """A fixed-bucket histogram: counts per bucket (non-cumulative), plus sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bucket(seconds)] += 1
        self.total += seconds


class Stats:
    """Every counter the proxy keeps. Single-threaded (one event loop), so no locks."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: defaultdict[str, Histogram] = defaultdict(Histogram)
        self.lookups: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.client_connections = 0
        self.client_connections_total = 0
        self.client_connections_max = 0
        self.backend_connections: defaultdict[str, int] = defaultdict(int)
        self.backend_up: dict[str, int] = {}
        self.backend_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.backend_reconnects: defaultdict[str, int] = defaultdict(int)
        self.bytes_received = 0
        self.bytes_sent = 0
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.connection_faults = 0
        self.l2_promotions = 0
        self.chunk_misses = 0
        self.chunk_token_mismatches = 0
        self.batch_sizes: defaultdict[str, Histogram] = defaultdict(Histogram)
        self.gc_pauses: defaultdict[str, Histogram] = defaultdict(Histogram)  # young, old, full
        self.draining = 0
        self.orca = "l1only"
        # Security (counted once per connection or per authentication, never per request).
        self.tls_handshakes: defaultdict[str, int] = defaultdict(int)  # result: ok, failed
        self.auth: defaultdict[tuple[str, str], int] = defaultdict(int)  # (protocol, result)
        # The ring (service/cacheproxy/ring): per member, and the ring as a whole.
        self.ring_forwarded: defaultdict[str, int] = defaultdict(int)
        self.ring_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.ring_latency: defaultdict[str, Histogram] = defaultdict(Histogram)
        self.ring_member_up: dict[str, int] = {}
        self.ring_members = 0
        self.ring_generation = 0
        self.ring_swept_generation = 0  # the last ring generation whose orphan sweep finished
        self.ring_changes = 0
        self.ring_owner_down: defaultdict[str, int] = defaultdict(int)
        self.ring_waits: defaultdict[str, int] = defaultdict(int)  # parked, resumed, expired
        self.ring_warmup: defaultdict[str, int] = defaultdict(int)  # read_hit, read_miss, fill
        self.ring_sweep_retries: defaultdict[str, int] = defaultdict(int)  # busy, failed
        self.ring_invalidations = 0
        self.config_reloads: defaultdict[str, int] = defaultdict(int)  # ok, refused
        # Every config text offered, by source (file, signal, watch) and result (applied, unchanged,
        # superseded, refused); the ConfigMap watch's events by type and reconnects by reason.
        self.config_updates: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.config_watch_events: defaultdict[str, int] = defaultdict(int)
        self.config_watch_reconnects: defaultdict[str, int] = defaultdict(int)
        self.config_watch_up = 0
        self.ring_view: Callable[[], dict] | None = None  # GET /ring's answer, once a ring is configured

    def snapshot(self) -> dict:
        """A picklable copy, for summing across SO_REUSEPORT worker processes."""
        return {
            "requests": dict(self.requests),
            "latency": {k: (list(h.counts), h.total) for k, h in self.latency.items()},
            "lookups": dict(self.lookups),
            "client_connections": self.client_connections,
            "client_connections_total": self.client_connections_total,
            "client_connections_max": self.client_connections_max,
            "backend_connections": dict(self.backend_connections),
            "backend_up": dict(self.backend_up),
            "backend_errors": dict(self.backend_errors),
            "backend_reconnects": dict(self.backend_reconnects),
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "errors": dict(self.errors),
            "connection_faults": self.connection_faults,
            "l2_promotions": self.l2_promotions,
            "chunk_misses": self.chunk_misses,
            "chunk_token_mismatches": self.chunk_token_mismatches,
            "batch_sizes": {k: (list(h.counts), h.total) for k, h in self.batch_sizes.items()},
            "gc_pauses": {k: (list(h.counts), h.total) for k, h in self.gc_pauses.items()},
            "draining": self.draining,
            "tasks": _task_count(),
            "orca": self.orca,
            "tls_handshakes": dict(self.tls_handshakes),
            "auth": dict(self.auth),
            "ring_forwarded": dict(self.ring_forwarded),
            "ring_errors": dict(self.ring_errors),
            "ring_latency": {k: (list(h.counts), h.total) for k, h in self.ring_latency.items()},
            "ring_member_up": dict(self.ring_member_up),
            "ring_members": self.ring_members,
            "ring_generation": self.ring_generation,
            "ring_swept_generation": self.ring_swept_generation,
            "ring_changes": self.ring_changes,
            "ring_owner_down": dict(self.ring_owner_down),
            "ring_waits": dict(self.ring_waits),
            "ring_warmup": dict(self.ring_warmup),
            "ring_sweep_retries": dict(self.ring_sweep_retries),
            "ring_invalidations": self.ring_invalidations,
            "config_reloads": dict(self.config_reloads),
            "config_updates": dict(self.config_updates),
            "config_watch_events": dict(self.config_watch_events),
            "config_watch_reconnects": dict(self.config_watch_reconnects),
            "config_watch_up": self.config_watch_up,
            "ring_view": self.ring_view() if self.ring_view is not None else None,
        }


def _task_count() -> int:
    """asyncio tasks alive in this process: the proxy runs none per request or per connection
    (L1L2 operations aside), so this should stay flat; a leak would show here."""
    import asyncio

    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop (a snapshot taken outside the proxy)
        return 0


STATS: Final = Stats()
