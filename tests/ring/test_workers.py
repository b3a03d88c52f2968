"""--workers with a ring: every worker routes and serves the peer port (SO_REUSEPORT); a SIGHUP
to the parent reaches every worker; the parent's /ring answers for them."""

from __future__ import annotations

import os
import signal

from tests.ring.load import deadline_poll
from tests.ring.tier import Tier
from tests.support.procs import talk


def test_workers_route_and_reload_together() -> None:
    tier = Tier.start(2)
    try:
        # Restart member 0 with two workers.
        first = tier.pairs[0]
        assert first.proxy is not None
        first.proxy.stop()
        tier.start_proxy(0, ("--workers", "2"))
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
