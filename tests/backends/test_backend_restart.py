"""Backend down: prompt SERVER_ERROR (never a hang), /readyz fails, service recovers by itself."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.procs import connect, free_port, recv_until, start_memcached, start_proxy, wait_http_ok


def ask(sock, data: bytes, terminator: bytes) -> tuple[bytes, float]:
    t0 = time.monotonic()
    sock.sendall(data)
    return recv_until(sock, terminator), time.monotonic() - t0


@pytest.mark.parametrize("batched", [False, True], ids=["per-client", "batched"])
def test_backend_killed_and_restarted(batched: bool, tmp_path):
    port = free_port()
    mc = start_memcached(port=port)
    args = ["--no-batching"]
    if batched:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("batching: {enabled: true, max_connections: 2}\n")
        args = ["--config", str(cfg)]
    proxy = start_proxy(mc.addr, args=args)
    admin = proxy.extra["admin"]
    try:
        with connect(proxy.addr) as s:
            assert ask(s, b"set k 0 0 1\r\nv\r\n", b"\r\n")[0] == b"STORED\r\n"
            mc.stop(signal.SIGKILL)
            answer, took = ask(s, b"get k\r\n", b"\r\n")
            assert answer.startswith(b"SERVER_ERROR backend l1")
            assert took < 1.0
            wait_http_ok(f"http://{admin}/readyz", want=503, timeout=10)
            for _ in range(20):  # while down, every answer is a prompt error
                answer, took = ask(s, b"get k\r\n", b"\r\n")
                assert answer.startswith(b"SERVER_ERROR") and took < 1.0
            mc = start_memcached(port=port)
            wait_http_ok(f"http://{admin}/readyz", timeout=10)
            deadline = time.monotonic() + 5
            while True:  # the same client connection recovers without reconnecting
                answer, _ = ask(s, b"set k 0 0 2\r\nv2\r\n", b"\r\n")
                if answer == b"STORED\r\n":
                    break
                assert answer.startswith(b"SERVER_ERROR") and time.monotonic() < deadline
            assert ask(s, b"get k\r\n", b"END\r\n")[0] == b"VALUE k 0 2\r\nv2\r\nEND\r\n"
    finally:
        proxy.stop()
        mc.stop()


def test_backend_never_there_gives_errors_not_hangs():
    port = free_port()
    proxy = start_proxy(f"127.0.0.1:{port}", wait_ready=False)
    try:
        from tests.support.procs import wait_connectable

        wait_connectable(proxy.addr, proxy.popen)
        with connect(proxy.addr) as s:
            answer, took = ask(s, b"get a b c\r\n", b"\r\n")
            assert answer.startswith(b"SERVER_ERROR backend l1 unavailable") and took < 1.0
            answer, _ = ask(s, b"set a 0 0 1 noreply\r\nx\r\nmn\r\n", b"\r\n")
            assert answer.startswith(b"SERVER_ERROR")
    finally:
        proxy.stop()
