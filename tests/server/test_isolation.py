"""Bad input on one connection never crashes the proxy or disturbs other connections."""

from __future__ import annotations

import random
import socket

from tests.support.binary_frames import encode_request, parse_frames
from tests.support.procs import connect, recv_until, start_memcached, start_proxy


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


def test_a_long_backlog_of_answers_the_proxy_gives_itself_is_served_whole(proxy):
    """200 gets fill the in-flight window; 3,000 lines answered by the proxy itself (ERROR) wait
    behind them and are served as the gets' answers drain. memcached answers every one; so must
    the proxy (a nested run of the backlog per such answer would exhaust the stack)."""
    with connect(proxy.addr) as s:
        s.sendall(b"get k\r\n" * 200 + b"x\r\n" * 3000 + b"mn\r\n")
        assert recv_until(s, b"MN\r\n") == b"END\r\n" * 200 + b"ERROR\r\n" * 3000 + b"MN\r\n"
    with connect(proxy.addr) as s:  # binary: GETs, then VERSIONs the proxy answers, then a NOOP
        s.sendall(encode_request(0x00, b"k") * 200 + encode_request(0x0B) * 3000 + encode_request(0x0A, opaque=7))
        frames: list = []
        data = b""
        while not frames or frames[-1][2] != 7:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {len(frames)} answers"
            frames, _ = parse_frames(data := data + chunk)
        assert [f[0] for f in frames] == [0x00] * 200 + [0x0B] * 3000 + [0x0A]
    assert proxy.popen.poll() is None


def test_clients_sharing_one_backend_connection_keep_their_own_order_and_fate(tmp_path):
    """With batching on one pool connection, every client shares it (and its orca): a client that
    pipelines and hangs up with answers owed leaves the others' ordered answers whole."""
    config = tmp_path / "one.yaml"
    config.write_text("batching: {enabled: true, max_connections: 1}\n")
    mc = start_memcached()
    proxy = start_proxy(mc.addr, args=["--config", str(config)])
    try:
        readers = [connect(proxy.addr) for _ in range(10)]
        for round_ in range(20):
            quitter = connect(proxy.addr)
            quitter.sendall(b"".join(b"set q%d 0 0 1\r\nq\r\nget q%d\r\n" % (i, i) for i in range(200)))
            quitter.close()  # gone with 400 answers owed on the shared connection
            for i, sock in enumerate(readers):
                roundtrip(sock, b"r%d" % i, b"v%d.%d" % (i, round_))
        for sock in readers:
            sock.close()
        assert proxy.popen.poll() is None
    finally:
        proxy.stop()
        mc.stop()
