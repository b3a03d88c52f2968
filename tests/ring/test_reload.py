"""Config reload without a ring: limits and timeouts apply live, restart-only keys are logged and
kept, a broken file is refused and the old config keeps serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.ring.load import deadline_poll
from tests.support.procs import recv_until, start_memcached, start_proxy


def metric(admin: str, line_prefix: str) -> float:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_live_timeouts_restart_only_keys_and_a_broken_file() -> None:
    memcached = start_memcached()
    path = Path(tempfile.mkdtemp(prefix="reload-")) / "c.yaml"
    path.write_text(json.dumps({"idle_timeout": 0}))
    proxy = start_proxy(memcached.addr, args=["--config", str(path)])
    admin = proxy.extra["admin"]
    try:
        host, port = proxy.addr.rsplit(":", 1)
        idle = socket.create_connection((host, int(port)), timeout=10)
        idle.sendall(b"version\r\n")
        assert recv_until(idle, b"\r\n").startswith(b"VERSION")
        # idle_timeout applies live; max_item_size needs a restart (kept, logged).
        path.write_text(json.dumps({"idle_timeout": 0.5, "max_item_size": 2 << 20}))
        os.kill(proxy.pid, signal.SIGHUP)
        deadline_poll(lambda: metric(admin, 'cacheproxy_config_reloads_total{result="ok"}') >= 1, 10)
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the proxy for being idle
        assert time.monotonic() - started < 5
        log = Path(proxy.extra["log"]).read_text()
        assert "max_item_size changed, which needs a restart" in log
        # A broken file: refused, counted, the proxy keeps serving with the config it had.
        path.write_text("idle_timeout: [\n")
        os.kill(proxy.pid, signal.SIGHUP)
        deadline_poll(lambda: metric(admin, 'cacheproxy_config_reloads_total{result="refused"}') >= 1, 10)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"set k 0 0 1\r\nv\r\nget k\r\n")
            assert recv_until(s, b"END\r\n") == b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n"
        assert "config reload (SIGHUP) refused" in Path(proxy.extra["log"]).read_text()
        assert proxy.popen.poll() is None
        idle.close()
    finally:
        proxy.stop()
        memcached.stop()
