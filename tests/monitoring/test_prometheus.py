"""A real Prometheus scrapes a real proxy under load: every dashboard query returns data and the alert
rules evaluate cleanly on the real series.

Setup: two Debian memcacheds (L1, L2), the proxy in L1L2 mode in front of them, Prometheus on 127.0.0.1
scraping the proxy's admin port every second with the labels a ServiceMonitor would add. A bounded,
paced pymemcache load (hits, misses, multi-gets, deletes, a bad command, an oversized value) runs in a
thread while the queries are polled; L2 is stopped and restarted once so backend errors exist.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

from tests.monitoring.prometheus import ScrapeTarget, api, finite_values, query, start_prometheus, without_data
from tests.support.procs import Proc, connect, recv_until, start_memcached, start_proxy, wait_connectable

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "cacheproxy" / "dashboards" / "cacheproxy.json"
RULES = REPO / "charts" / "cacheproxy" / "alerts" / "cacheproxy-rules.yaml"
LABELS = {"namespace": "shop", "pod": "sessions-7d9f-abcde", "app_kubernetes_io_instance": "sessions"}
VARIABLES = {"$namespace": LABELS["namespace"], "$cacheproxy": LABELS["app_kubernetes_io_instance"],
             "$__rate_interval": "20s"}
LOAD_MAX_OPS = 200_000
LOAD_MAX_SECONDS = 150.0
LOAD_OPS_PER_SECOND = 400
QUERY_DEADLINE_SECONDS = 90.0


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    """Every query but the ring's ("Ring: ..." panels have data only where a ring is configured)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(f"{panel['title']} / {target['refId']}", substitute(target["expr"]))
            for panel in dashboard["panels"] for target in panel.get("targets", [])
            if not panel["title"].startswith("Ring: ")]


class Load(threading.Thread):
    """Paced gets and sets through the proxy, bounded in operations and time; stops on request."""

    def __init__(self, proxy_addr: str) -> None:
        super().__init__(daemon=True)
        host, port = proxy_addr.rsplit(":", 1)
        self.server = (host, int(port))
        self.halt = threading.Event()
        self.ops = 0
        self.failures = 0

    def run(self) -> None:
        client = Client(self.server, connect_timeout=5, timeout=5)
        started = time.monotonic()
        period = 1.0 / LOAD_OPS_PER_SECOND
        try:
            while not self.halt.is_set() and self.ops < LOAD_MAX_OPS:
                now = time.monotonic()
                if now - started > LOAD_MAX_SECONDS:
                    break
                self.step(client, self.ops)
                self.ops += 1
                # Pacing, not synchronisation: keep the load steady instead of saturating 2 cores.
                self.halt.wait(max(0.0, started + self.ops * period - time.monotonic()))
        finally:
            client.close()

    def step(self, client: Client, i: int) -> None:
        key = f"key:{i % 500}"
        try:
            match i % 5:
                case 0 | 1:
                    client.set(key, f"value-{i}".encode() * 8)
                case 2:
                    client.get(key)  # mostly hits
                case 3:
                    client.get(f"missing:{i}")  # a miss in L1 and in L2
                case 4:
                    client.get_many([key, f"key:{(i + 7) % 500}", f"missing:{i}"])
        except (MemcacheError, OSError):
            self.failures += 1


def provoke_client_errors(proxy_addr: str) -> None:
    """A command the proxy does not know and a value larger than max_item_size."""
    sock = connect(proxy_addr)
    try:
        sock.sendall(b"no_such_command\r\n")
        assert recv_until(sock, b"\r\n").endswith(b"\r\n")
        size = 2 * 1024 * 1024
        sock.sendall(b"set huge 0 0 %d\r\n" % size + b"x" * size + b"\r\n")
        reply = recv_until(sock, b"\r\n")
        assert reply.startswith((b"SERVER_ERROR", b"CLIENT_ERROR")), reply
    except OSError:
        pass  # the proxy may close a connection that sent an oversized value: also an error it counts
    finally:
        sock.close()


@pytest.fixture
def l1() -> Iterator[Proc]:
    proc = start_memcached()
    yield proc
    proc.stop()


@pytest.fixture
def l2_procs() -> Iterator[list[Proc]]:
    """L2 memcached; a list so the test can replace it after a restart and still have it stopped."""
    procs = [start_memcached()]
    yield procs
    for proc in procs:
        proc.stop()


def test_every_dashboard_query_returns_data_from_a_real_proxy(l1: Proc, l2_procs: list[Proc]) -> None:
    l2 = l2_procs[0]
    proxy = start_proxy(l1.addr, l2=l2.addr)
    prometheus = None
    load = Load(proxy.addr)
    try:
        prometheus = start_prometheus([ScrapeTarget(proxy.extra["admin"], LABELS)], rule_files=[RULES])
        load.start()
        provoke_client_errors(proxy.addr)
        # L1 loses its data (as after a memcached restart): the next gets hit L2 and are promoted.
        wait_until(lambda: load.ops >= 1000, "load warm-up")
        flush_all(l1.addr)
        # Backend fault: L2 down for a moment (misses now fail over to an unreachable L2), then back.
        l2.stop()
        probe = Client(tuple_addr(proxy.addr), connect_timeout=5, timeout=5)
        for i in range(20):
            with contextlib.suppress(MemcacheError, OSError):
                probe.get(f"missing-while-l2-down:{i}")
        probe.close()
        restarted = start_memcached(port=int(l2.addr.rsplit(":", 1)[1]))
        l2_procs.append(restarted)
        wait_connectable(restarted.addr)

        pending = without_data(prometheus, dict(dashboard_queries()), QUERY_DEADLINE_SECONDS)
        assert not pending, f"dashboard queries without data after {QUERY_DEADLINE_SECONDS}s: {pending}"

        # The L2 hit ratio above is backed by real L2 hits (not only by its zero fallback).
        assert finite_values(query(prometheus, 'sum(cacheproxy_cache_lookups_total{level="l2", result="hit"})'))

        # The template variables resolve to the scraped proxy.
        namespaces = api(prometheus, "label/namespace/values", {"match[]": "cacheproxy_info"})
        assert LABELS["namespace"] in namespaces
        instances = api(prometheus, "label/app_kubernetes_io_instance/values",
                        {"match[]": f'cacheproxy_info{{namespace="{LABELS["namespace"]}"}}'})
        assert instances == [LABELS["app_kubernetes_io_instance"]]

        # Prometheus loaded every alert rule and evaluates it on the real series without error.
        groups = api(prometheus, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) >= 6
        assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    finally:
        load.halt.set()
        load.join(timeout=10)
        if prometheus is not None:
            prometheus.stop()
            shutil.rmtree(prometheus.extra["workdir"], ignore_errors=True)
        proxy.stop()
    assert load.ops > 0


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def flush_all(memcached_addr: str) -> None:
    sock = connect(memcached_addr)
    try:
        sock.sendall(b"flush_all\r\n")
        assert recv_until(sock, b"\r\n") == b"OK\r\n"
    finally:
        sock.close()


def tuple_addr(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)
