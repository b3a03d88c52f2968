"""A backend that stops answering: every request in flight gets SERVER_ERROR after --backend-timeout.

The sweeper only looks at connections with requests in flight (a connection joins its busy set when
its first request goes out and leaves it at the first sweep that finds it idle). So the clients here
are served once, then stay idle for several sweeps before memcached is stopped: their next requests
must bring their connections back under the sweeper's eye and time out.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.reliability.support import hold, metric
from tests.support.procs import connect, recv_until, start_memcached, start_proxy

CLIENTS = 50
TIMEOUT = 0.5  # --backend-timeout, seconds
SWEEP = 0.25  # the sweeper's interval (backends/sweeper.py)
READ_RETRIES = 2  # a pooled read is retried on another connection this many times before failing


@pytest.mark.parametrize("mode", ["per-client", "batched"])
def test_requests_to_a_stopped_backend_time_out(mode: str, tmp_path):
    mc = start_memcached()
    args = ["--backend-timeout", str(TIMEOUT)]
    if mode == "per-client":
        args.append("--no-batching")
    if mode == "batched":
        cfg = tmp_path / "batched.yaml"
        cfg.write_text("batching: {enabled: true, max_connections: 4}\n")
        args += ["--config", str(cfg)]
    proxy = start_proxy(mc.addr, args=args)
    admin = proxy.extra["admin"]
    socks = [connect(proxy.addr) for _ in range(CLIENTS)]
    stopped = False
    try:
        for sock in socks:
            sock.sendall(b"get k\r\n")
        assert all(recv_until(sock, b"END\r\n") == b"END\r\n" for sock in socks)
        hold(4 * SWEEP, proxy)  # idle through several sweeps: no connection is busy any more
        timeouts_before = metric(admin, "cacheproxy_backend_errors_total", backend="l1", kind="timeout")

        os.kill(mc.pid, signal.SIGSTOP)
        stopped = True
        started = time.monotonic()
        asking = socks[:10]
        for sock in asking:
            sock.sendall(b"get k\r\nset k 0 0 1\r\nv\r\n")
        answers = [recv_until(sock, b"\r\n") for sock in asking]
        elapsed = time.monotonic() - started

        for answer in answers:
            assert answer.startswith(b"SERVER_ERROR backend l1 "), answer
        assert TIMEOUT <= elapsed <= (READ_RETRIES + 1) * (TIMEOUT + SWEEP) + 2.0, elapsed
        assert metric(admin, "cacheproxy_backend_errors_total", backend="l1", kind="timeout") > timeouts_before
        assert proxy.popen.poll() is None
    finally:
        for sock in socks:
            sock.close()
        if stopped:
            os.kill(mc.pid, signal.SIGCONT)
        proxy.stop()
        mc.stop()
