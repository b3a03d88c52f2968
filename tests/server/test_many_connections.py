"""10,000 concurrent client connections, held open and served correctly.

The clients run in their own process (each process may hold at most 20,000 descriptors here).
With batching, 10,000 clients share a few backend connections; with Rend's classic one backend
connection per client the proxy needs two descriptors per client, so that layout is tested at
9,900 (the most this machine's 20,000-descriptor limit allows with room to spare).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support.procs import start_memcached, start_proxy
from tests.support.scrape import samples


def run_clients(addr: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.support.manyconns", addr, str(n), "2"],
                         capture_output=True, text=True, timeout=240, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("mode", "n"), [("batched", 10_000), ("per-client", 9_900)])
def test_many_concurrent_connections(mode: str, n: int):
    mc = start_memcached(args=["-c", "12000", "-b", "4096"])
    args: list[str] = ["--no-batching"]
    if mode == "batched":
        cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        cfg.write("batching:\n  enabled: true\n  max_connections: 8\n")
        cfg.close()
        args = ["--config", cfg.name]
    proxy = start_proxy(mc.addr, args=args)
    try:
        result = run_clients(proxy.addr, n)
        assert result == {"connected": n, "ok": 2 * n, "wrong": 0, "errors": 0}
        assert proxy.popen.poll() is None
        key = ("cacheproxy_backend_connections", (("backend", "l1"),))
        if mode == "batched":  # Rend's anchor: thousands of clients over a handful of connections
            assert 1 <= samples(proxy.extra["admin"])[key] <= 8
        else:  # every client's own backend connection closes with it
            deadline = time.monotonic() + 20
            while samples(proxy.extra["admin"])[key] != 0:
                assert time.monotonic() < deadline, "backend connections leaked"
                time.sleep(0.1)
    finally:
        proxy.stop()
        mc.stop()
