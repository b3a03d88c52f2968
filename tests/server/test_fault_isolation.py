"""An unexpected exception in one connection closes that connection (and its own backend
connection) only. The fault is injected into a proxy running in this process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict

import pytest
from cacheproxy import app as app_module
from cacheproxy.config import load
from cacheproxy.metrics.stats import STATS

from tests.support.procs import connect, free_port, recv_until


@pytest.fixture
def inprocess_proxy(memcached):
    port = free_port()
    config = load(None, {"listen": f"127.0.0.1:{port}", "l1": memcached.addr, "admin": f"127.0.0.1:{free_port()}"})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    main: dict = {}

    async def run():
        main["task"] = asyncio.current_task()
        started = asyncio.Event()
        serving = loop.create_task(app_module.serve(config, ready_event=started))
        await started.wait()
        ready.set()
        await serving

    def thread():
        asyncio.set_event_loop(loop)
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            loop.run_until_complete(run())

    t = threading.Thread(target=thread, daemon=True)
    t.start()
    assert ready.wait(10)
    yield f"127.0.0.1:{port}", loop
    loop.call_soon_threadsafe(lambda: [task.cancel() for task in asyncio.all_tasks(loop)])
    t.join(10)


class ExplodingCounts(defaultdict):
    """The request counters, failing on one key: rendering a get hit (only the victim gets a hit)
    raises inside this client's answer path. Counters, not a patched method: the hot path may be
    compiled (mypyc), whose classes cannot be patched."""

    def __setitem__(self, key, value) -> None:
        if key == ("text", "get", "hit"):
            raise RuntimeError("injected fault")
        super().__setitem__(key, value)


def test_fault_closes_only_that_connection(inprocess_proxy, monkeypatch):
    addr, _loop = inprocess_proxy
    monkeypatch.setattr(STATS, "requests", ExplodingCounts(int, STATS.requests))
    others = [connect(addr) for _ in range(5)]
    for s in others:
        s.sendall(b"set boom 0 0 1\r\nx\r\n")
        assert recv_until(s, b"\r\n") == b"STORED\r\n"
    faults_before, backends_before = STATS.connection_faults, STATS.backend_connections["l1"]
    victim = connect(addr)
    victim.sendall(b"get boom\r\n")
    assert victim.recv(100) == b""  # closed, no answer
    victim.close()
    assert STATS.connection_faults == faults_before + 1
    for s in others:
        s.sendall(b"get other\r\n")
        assert recv_until(s, b"END\r\n") == b"END\r\n"
        s.close()
    assert STATS.backend_connections["l1"] <= backends_before
    with connect(addr) as s:  # and new clients are served
        s.sendall(b"version\r\n")
        assert recv_until(s, b"\r\n").startswith(b"VERSION ")
