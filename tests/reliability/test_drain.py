"""SIGTERM under load: /readyz fails at once, no new connections, every request already sent is
answered correctly, idle connections are closed, and the process exits within the grace period.

The load driver records the CLOCK_MONOTONIC time each request was sent; the test records the
time it sent SIGTERM. A request sent before that moment must get its right answer; one sent
after may find its connection closed (the client then reconnects to another replica).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.reliability.support import LoadDriver, metric, metrics, summary, wait_until
from tests.support.procs import Proc, connect, http_status, start_memcached, start_proxy

GRACE = 10.0


def failed_before(tally: dict, t: float) -> list:
    return [(round(sent - t, 4), kind) for sent, kind in tally["failure_events"] if sent < t]


def exit_seconds(proxy: Proc, since: float, limit: float) -> float:
    try:
        proxy.popen.wait(timeout=max(0.1, since + limit - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the proxy was still running {limit:.1f}s after SIGTERM") from None
    return time.monotonic() - since


def refused(addr: str) -> bool:
    try:
        connect(addr, timeout=0.5).close()
    except (ConnectionRefusedError, TimeoutError):
        return True
    return False


def progress(admin: str) -> float:
    """Requests answered so far (all commands, all results)."""
    return sum(v for (name, _), v in metrics(admin).items() if name == "cacheproxy_requests_total")


def test_sigterm_under_busy_load_loses_no_sent_request():
    """1,000 connections sending back to back, 100 idle: SIGTERM; nothing sent before it fails."""
    mc = start_memcached(args=["-c", "4096"])
    proxy = start_proxy(mc.addr, args=["--shutdown-grace", str(GRACE)])
    driver = LoadDriver(proxy.addr, 1000, rate=0, seconds=120, prefix="drain-busy")
    idle: list[socket.socket] = []
    try:
        assert driver.wait_ready() == 1000
        idle = [connect(proxy.addr) for _ in range(100)]
        # accepted, not just queued in the listen backlog (closing a listener resets those)
        wait_until(lambda: metric(proxy.extra["admin"], "cacheproxy_client_connections"), lambda n: n == 1100, 10,
                   "idle connections accepted")
        start = progress(proxy.extra["admin"])
        wait_until(lambda: progress(proxy.extra["admin"]), lambda n: n > start + 5000, 30, "load running")
        t_term = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        took = exit_seconds(proxy, t_term, GRACE)
        assert proxy.popen.returncode == 0
        for sock in idle:
            sock.settimeout(1.0)
            assert sock.recv(1) == b"", "an idle connection was left open"
        tally = driver.finish()
        facts = summary(tally) | {"exit_s": took}
        assert tally["wrong"] == 0 and tally["errors"] == 0, facts
        assert failed_before(tally, t_term) == [], facts
        assert tally["rounds_ok"] > 5000, facts
    finally:
        driver.kill()
        for sock in idle:
            sock.close()
        proxy.stop()
        mc.stop()


def test_readiness_fails_at_once_and_in_flight_requests_finish():
    """With every request stuck on a paused memcached, SIGTERM: /readyz 503 and the port closed
    within half a second, idle clients closed, and the stuck requests still answered correctly
    once memcached resumes; then the proxy exits."""
    mc = start_memcached()
    proxy = start_proxy(mc.addr, args=["--shutdown-grace", str(GRACE), "--backend-timeout", "20"])
    admin = proxy.extra["admin"]
    driver = LoadDriver(proxy.addr, 200, rate=0, seconds=120, prefix="drain-stuck")
    idle: list[socket.socket] = []
    stopped = False
    try:
        assert driver.wait_ready() == 200
        idle = [connect(proxy.addr) for _ in range(100)]
        wait_until(lambda: metric(admin, "cacheproxy_client_connections"), lambda n: n == 300, 10,
                   "idle connections accepted")
        os.kill(mc.pid, signal.SIGSTOP)
        stopped = True
        last = [progress(admin)]

        def stalled() -> bool:  # no request completes any more: all 200 connections wait
            now = progress(admin)
            same, last[0] = now == last[0], now
            return same

        wait_until(stalled, bool, 10, "requests stalled on the paused memcached", interval=0.3)
        t_term = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        wait_until(lambda: http_status(f"http://{admin}/readyz"), lambda s: s == 503, 0.5, "/readyz after SIGTERM")
        assert metric(admin, "cacheproxy_draining") == 1
        wait_until(lambda: refused(proxy.addr), bool, 0.5, "new connections refused after SIGTERM")
        for sock in idle:
            sock.settimeout(max(0.05, t_term + 1.0 - time.monotonic()))
            assert sock.recv(1) == b"", "an idle connection was not closed at once"
        assert proxy.popen.poll() is None, "the proxy exited with requests still in flight"
        os.kill(mc.pid, signal.SIGCONT)
        stopped = False
        took = exit_seconds(proxy, t_term, GRACE)
        assert proxy.popen.returncode == 0
        tally = driver.finish()
        facts = summary(tally) | {"exit_s": took}
        assert tally["wrong"] == 0 and tally["errors"] == 0, facts
        assert failed_before(tally, t_term) == [], facts
    finally:
        if stopped:
            os.kill(mc.pid, signal.SIGCONT)
        driver.kill()
        for sock in idle:
            sock.close()
        proxy.stop()
        mc.stop()


def test_exit_is_bounded_by_the_grace_period():
    """Requests that can never finish (memcached paused for good) do not hold the exit past the
    grace period."""
    grace = 2.0
    mc = start_memcached()
    proxy = start_proxy(mc.addr, args=["--shutdown-grace", str(grace), "--backend-timeout", "60"])
    socks: list[socket.socket] = []
    try:
        os.kill(mc.pid, signal.SIGSTOP)
        socks = [connect(proxy.addr) for _ in range(50)]
        for sock in socks:
            sock.sendall(b"get stuck\r\n")
        t_term = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        took = exit_seconds(proxy, t_term, grace + 1.5)
        assert took >= grace - 0.2, f"exited after {took:.2f}s with requests in flight"
    finally:
        os.kill(mc.pid, signal.SIGCONT)
        for sock in socks:
            sock.close()
        proxy.stop()
        mc.stop()


def test_a_client_that_sends_early_in_the_drain_gets_its_answer_and_then_the_close():
    """A connection idle at SIGTERM stays open for its client's next request (up to half a second):
    the request is answered, and the connection closes right behind the answer, so a client that
    waits for each answer never has a request on the wire when its connection ends."""
    mc = start_memcached()
    proxy = start_proxy(mc.addr, args=["--shutdown-grace", str(GRACE)])
    admin = proxy.extra["admin"]
    try:
        sock = connect(proxy.addr)
        sock.sendall(b"set drain:early 0 0 2\r\nok\r\n")
        assert sock.recv(100) == b"STORED\r\n"
        t_term = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        wait_until(lambda: http_status(f"http://{admin}/readyz"), lambda s: s == 503, 0.5, "/readyz after SIGTERM")
        time.sleep(max(0.0, t_term + 0.2 - time.monotonic()))  # the client's pause between two requests
        sock.sendall(b"get drain:early\r\n")
        sock.settimeout(2.0)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        assert received == b"VALUE drain:early 0 2\r\nok\r\nEND\r\n"  # the answer, then the close
        sock.close()
        took = exit_seconds(proxy, t_term, GRACE)
        assert took < 2.0, f"exited {took:.2f}s after SIGTERM"
    finally:
        proxy.stop()
        mc.stop()
