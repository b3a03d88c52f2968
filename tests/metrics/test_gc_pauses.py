"""Garbage collection runs on the proxy's timer (app.collect_garbage), never inside a request; each
collection holds the event loop, so its pause is exported as cacheproxy_gc_pause_seconds{kind}."""

from __future__ import annotations

import gc
import time

from cacheproxy.app import GC_FULL_TICKS, GC_OLD_TICKS, collect_once
from cacheproxy.metrics.stats import STATS

from tests.support.scrape import samples


def counts() -> dict[str, int]:
    return {kind: sum(h.counts) for kind, h in STATS.gc_pauses.items()}


def test_each_tick_runs_its_collection_and_times_it() -> None:
    before = counts()
    try:
        kinds = [collect_once(t) for t in (1, 2, GC_OLD_TICKS, GC_FULL_TICKS)]
    finally:
        gc.unfreeze()  # this test process keeps collecting on its own
    assert kinds == ["young", "young", "old", "full"]
    after = counts()
    assert {k: after[k] - before.get(k, 0) for k in after} == {"young": 2, "old": 1, "full": 1}
    assert STATS.gc_pauses["full"].total > 0


def test_the_running_proxy_exports_its_pauses(proxy) -> None:
    """The timer's first young collection comes a second after start; poll /metrics for it."""
    name = ("cacheproxy_gc_pause_seconds_count", (("kind", "young"),))
    deadline = time.monotonic() + 10
    found = samples(proxy.extra["admin"]).get(name, 0)
    while found < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        found = samples(proxy.extra["admin"]).get(name, 0)
    assert found >= 1
    buckets = {labels: v for (metric, labels), v in samples(proxy.extra["admin"]).items()
               if metric == "cacheproxy_gc_pause_seconds_bucket" and ("kind", "young") in labels}
    assert buckets[(("kind", "young"), ("le", "+Inf"))] >= found
