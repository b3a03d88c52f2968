"""--workers N: processes share the port; /metrics reports totals across all of them."""

from __future__ import annotations

import os
import signal

from tests.support.procs import connect, recv_until, start_proxy, wait_http_ok
from tests.support.scrape import samples


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def test_workers_share_the_port_and_metrics_sum(memcached):
    proxy = start_proxy(memcached.addr, args=["--workers", "2"])
    try:
        workers = children_of(proxy.pid)
        assert len(workers) >= 2
        socks = [connect(proxy.addr) for _ in range(40)]
        for i, s in enumerate(socks):
            s.sendall(b"set w%d 0 0 1\r\nx\r\nget w%d\r\n" % (i, i))
            assert recv_until(s, b"END\r\n") == b"STORED\r\nVALUE w%d 0 1\r\nx\r\nEND\r\n" % i
        m = samples(proxy.extra["admin"])
        key = ("cacheproxy_requests_total", (("command", "get"), ("protocol", "text"), ("result", "hit")))
        assert m[key] == 40
        assert m[("cacheproxy_client_connections", ())] == 40
        served = []
        for pid in workers:  # both workers took connections (the kernel spreads them)
            fds = os.listdir(f"/proc/{pid}/fd")
            served.append(len(fds))
        assert min(served) > 20
        for s in socks:
            s.close()
        wait_http_ok(f"http://{proxy.extra['admin']}/readyz")
    finally:
        assert proxy.stop(signal.SIGTERM) == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
