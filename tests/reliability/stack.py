"""memcached + proxy + 1,000 well-behaved clients, the backdrop of the bad-client tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tests.reliability.support import LoadDriver, summary
from tests.support.procs import Proc, start_memcached, start_proxy

GOOD_CONNECTIONS = 1000


@dataclass
class Stack:
    memcached: Proc
    proxy: Proc
    good: LoadDriver | None

    @property
    def admin(self) -> str:
        return self.proxy.extra["admin"]

    def check_good_clients(self, min_rounds: int = 1) -> dict:
        """Stop the well-behaved clients; every one of their answers must have been right."""
        assert self.good is not None
        tally = self.good.finish()
        self.good = None
        facts = summary(tally)
        assert tally["connected"] == GOOD_CONNECTIONS, facts
        assert (tally["wrong"], tally["errors"], tally["lost"], tally["failures"]) == (0, 0, 0, 0), facts
        assert tally["rounds_ok"] >= min_rounds, facts
        assert self.proxy.popen.poll() is None, "the proxy died"
        return tally


@contextlib.contextmanager
def stack(proxy_args: Sequence[str] = (), good: int = GOOD_CONNECTIONS, rate: float = 2.0,
          memcached_args: Sequence[str] = ("-c", "12000", "-b", "4096")) -> Iterator[Stack]:
    """Start everything; stop every process by PID afterwards, whatever happened."""
    mc = start_memcached(args=list(memcached_args))
    proxy = None
    driver = None
    try:
        proxy = start_proxy(mc.addr, args=list(proxy_args))
        driver = LoadDriver(proxy.addr, good, rate=rate, seconds=180, prefix="good") if good else None
        if driver is not None:
            assert driver.wait_ready() == good
        s = Stack(mc, proxy, driver)
        yield s
        driver = s.good
    finally:
        if driver is not None:
            driver.kill()
        if proxy is not None:
            proxy.stop()
        mc.stop()
