"""Floods of pipelined quiet writes through L1L2 (what ``set_multi`` sends): every write lands in
both levels in the client's order, and a client that gives up mid-flood is logged, not lost."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from bench.quietwrites import HEADER, NOOP, flood
from tests.support.procs import Proc, connect, recv_until, start_proxy

KEYS = 5000


@pytest.fixture
def proxy(l1: Proc, l2: Proc):
    proc = start_proxy(l1.addr, l2=l2.addr)
    yield proc
    proc.stop()


def noop_answer(sock: socket.socket) -> bytes:
    buf = b""
    while True:
        while len(buf) >= HEADER.size:
            opcode, body = buf[1], HEADER.unpack_from(buf)[6]
            if len(buf) < HEADER.size + body:
                break
            frame, buf = buf[:HEADER.size + body], buf[HEADER.size + body:]
            if opcode == NOOP:
                return frame
            raise AssertionError(f"a quiet write answered: {frame!r}")
        chunk = sock.recv(1 << 16)
        assert chunk, "the proxy closed the connection"
        buf += chunk


def test_flood_lands_in_both_levels(proxy: Proc, l1: Proc, l2: Proc) -> None:
    with connect(proxy.addr, timeout=60) as sock:
        sock.sendall(flood(KEYS, 16))
        assert noop_answer(sock)[1] == NOOP
    for level in (l1, l2):
        with connect(level.addr) as sock:
            keys = b" ".join(b"quiet:%06d" % i for i in range(0, KEYS, 499))
            sock.sendall(b"get " + keys + b"\r\n")
            assert recv_until(sock, b"END\r\n").count(b"VALUE ") == len(range(0, KEYS, 499))


def test_pipelined_writes_keep_client_order(proxy: Proc, l1: Proc, l2: Proc) -> None:
    """Writes to one key, pipelined with reads between them: each read sees the write before it."""
    steps = []
    for i in range(200):
        steps.append(b"set k 0 0 %d noreply\r\n%d\r\n" % (len(b"%d" % i), i))
        if i % 50 == 49:
            steps.append(b"get k\r\n")
    steps.append(b"delete k noreply\r\nappend k 0 0 1 noreply\r\nx\r\nincr k 1\r\nmn\r\n")
    with connect(proxy.addr) as sock:
        sock.sendall(b"".join(steps))
        out = recv_until(sock, b"MN\r\n")
    assert out == b"".join(b"VALUE k 0 %d\r\n%d\r\nEND\r\n" % (len(b"%d" % i), i) for i in (49, 99, 149, 199)) \
        + b"NOT_FOUND\r\nMN\r\n"
    for level in (l1, l2):
        with connect(level.addr) as sock:
            sock.sendall(b"get k\r\n")
            assert recv_until(sock, b"END\r\n") == b"END\r\n"


def test_client_giving_up_is_logged(proxy: Proc) -> None:
    """A client that pipelines 2,000 reads of a 100 KB value and resets the connection after the
    first answer bytes: the requests still held by the proxy are dropped, and that is logged."""
    value = b"x" * 100_000
    with connect(proxy.addr) as sock:
        sock.sendall(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
        assert recv_until(sock, b"\r\n") == b"STORED\r\n"
    sock = connect(proxy.addr, timeout=30)
    sock.sendall(b"get big\r\n" * 2000)
    assert sock.recv(1)  # the proxy is answering: it has parsed the burst and holds most of it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, as a client whose timeout expired
    deadline = time.monotonic() + 20
    log = proxy.extra["log"]
    while "disconnected with requests not answered" not in open(log).read():
        assert time.monotonic() < deadline, open(log).read()[-2000:]
        time.sleep(0.05)
    assert proxy.popen.poll() is None
