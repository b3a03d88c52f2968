"""--workers with a ring: every worker routes and serves the peer port (SO_REUSEPORT); a SIGHUP
to the parent reaches every worker; the parent's /ring answers for them."""

from __future__ import annotations

import os
import signal

from tests.ring.load import deadline_poll
from tests.ring.tier import Pair, Tier
from tests.support.procs import talk


def two_workers_first() -> tuple[Tier, Pair]:
    """A tier of two whose member 0 runs two workers."""
    tier = Tier.start(2)
    first = tier.pairs[0]
    assert first.proxy is not None
    first.proxy.stop()
    tier.start_proxy(0, ("--workers", "2"))
    return tier, first


def test_workers_route_and_reload_together() -> None:
    tier, first = two_workers_first()
    try:
        keys = [b"w:%d" % i for i in range(200)]
        for i, key in enumerate(keys):  # many connections: both workers take some
            assert talk(tier.pairs[i % 2].addr, b"set %s 0 0 1\r\nx\r\n" % key) == b"STORED\r\n"
        for key in keys:
            want = b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key
            assert talk(tier.pairs[0].addr, b"get %s\r\n" % key, b"END\r\n") == want
        # A changed config announced by SIGHUP alone (the file watch would see it too).
        tier.generation += 1
        tier.extra["owner_down"] = "error"
        tier.write()
        os.kill(first.proxy.pid, signal.SIGHUP)
        deadline_poll(lambda: tier.ring_json(0)["generation"] == tier.generation, 10)
        assert first.proxy.popen.poll() is None
        for key in keys[:50]:
            assert talk(tier.pairs[0].addr, b"get %s\r\n" % key, b"END\r\n").startswith(b"VALUE")
    finally:
        tier.stop()


def test_one_worker_sweeps_for_the_pod() -> None:
    """The workers share the pod's memcached: one sweep lists it once (two would list every key
    twice), and /ring and the swept-generation metric report that worker's sweep."""
    tier, first = two_workers_first()
    try:
        # The first ring's sweep runs at start; counted while the keys below land, it would add
        # the few it saw to the second sweep's count.
        deadline_poll(lambda: tier.ring_json(0)["swept_generation"] == tier.generation, 10)
        talk(first.memcached.addr, b"".join(b"set own:%d 0 0 1 noreply\r\nx\r\n" % i for i in range(300))
             + b"mn\r\n", b"MN\r\n")
        items = int(next(line.split()[2] for line in talk(first.memcached.addr, b"stats\r\n", b"END\r\n").split(
            b"\r\n") if line.startswith(b"STAT curr_items ")))
        scanned_before = tier.metric(0, 'cacheproxy_ring_warmup_total{event="sweep_scanned"}')
        tier.generation += 1  # a settled ring at a new generation: swept again
        tier.write()
        os.kill(first.proxy.pid, signal.SIGHUP)
        deadline_poll(lambda: tier.ring_json(0)["swept_generation"] == tier.generation, 10)
        assert tier.ring_json(0)["generation"] == tier.generation
        assert tier.ring_json(0)["handing_over"] is False
        assert tier.metric(0, 'cacheproxy_ring_warmup_total{event="sweep_scanned"}') - scanned_before == items
        assert tier.metric(0, "cacheproxy_ring_swept_generation") == tier.generation
    finally:
        tier.stop()
