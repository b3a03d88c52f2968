"""Bad input on one connection never crashes the proxy or disturbs other connections."""

from __future__ import annotations

import random
import socket

from tests.support.procs import connect, recv_until


def roundtrip(sock: socket.socket, key: bytes, value: bytes) -> None:
    sock.sendall(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key, len(value), value, key))
    got = recv_until(sock, b"END\r\n")
    assert got == b"STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)


def test_random_bytes_on_one_connection_leave_others_alone(proxy):
    rng = random.Random(1234)
    good = [connect(proxy.addr) for _ in range(20)]
    for i, sock in enumerate(good):
        roundtrip(sock, b"good%d" % i, b"v%d" % i)
    for _ in range(200):
        bad = connect(proxy.addr)
        try:
            bad.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
            bad.shutdown(socket.SHUT_WR)
            bad.settimeout(5)
            while bad.recv(65536):  # the proxy answers or closes; never hangs
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            bad.close()
    for i, sock in enumerate(good):
        roundtrip(sock, b"good%d" % i, b"again%d" % i)
        sock.close()
    assert proxy.popen.poll() is None


def test_binary_and_text_garbage_mixed(proxy):
    with connect(proxy.addr) as s:
        s.sendall(b"\x00\xff\r\nset\r\n")
        assert recv_until(s, b"ERROR\r\nERROR\r\n") == b"ERROR\r\nERROR\r\n"
        roundtrip(s, b"after", b"garbage")
