"""One bad client never hurts the others, nor the proxy's memory (issue 7, bad clients).

Every test runs next to 1,000 well-behaved connections in a separate process (two set+get
rounds a second each) and ends by checking that every one of their answers was right. Memory
is the proxy's VmRSS from /proc; limits are far below what the misbehaviour would cost if the
proxy buffered it, and far above the noise of the well-behaved load.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time

from tests.reliability.stack import stack
from tests.reliability.support import fd_count, metric, rss_kib, wait_until
from tests.support.procs import connect, recv_until

MIB = 1024


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """True once the proxy has closed SOCK (EOF or reset); waits up to WAIT seconds for that.

    Peeks, so an answer that arrives meanwhile stays unread (and ends the wait: not closed)."""
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.settimeout(10.0)


def drained_until_closed(sock: socket.socket, wait: float) -> bool:
    """Read and drop everything until the proxy closes SOCK; False if it is still open after WAIT."""
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


class RssWatch:
    """Samples a process's RSS in a thread while a misbehaviour runs; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.base = rss_kib(pid)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / MIB


def test_garbage_senders_are_answered_or_closed():
    """Random bytes (text-looking, binary-looking, newline-free) from 30 connections at once."""
    rng = random.Random(7)
    with stack() as s:
        faults_before = metric(s.admin, "cacheproxy_connection_faults_total")

        def garbage(kind: int) -> bytes:
            if kind == 0:  # lines of random tokens: answered ERROR / CLIENT_ERROR one by one
                words = [b"set", b"get", b"ms", b"mg", b"incr", b"0", b"-1", b"4294967295", b"noreply", b"\x00"]
                return b"".join(b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 8))) + b"\r\n"
                                for _ in range(20000))
            if kind == 1:  # pure noise, newlines included by chance
                return rng.randbytes(1 << 20)
            return bytes(rng.randrange(33, 127) for _ in range(300_000))  # one endless line: closed

        def one(kind: int) -> None:
            sock = connect(s.proxy.addr)
            reader = threading.Thread(target=drained_until_closed, args=(sock, 30.0), daemon=True)
            reader.start()
            try:
                sock.sendall(garbage(kind))
                sock.shutdown(socket.SHUT_WR)
            except OSError:  # reset, broken pipe, or already closed by the proxy (ENOTCONN)
                pass
            reader.join(40)
            sock.close()

        with RssWatch(s.proxy.pid) as watch:
            threads = [threading.Thread(target=one, args=(i % 3,)) for i in range(30)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
        assert metric(s.admin, "cacheproxy_connection_faults_total") == faults_before, "garbage raised in the proxy"
        assert watch.growth_mib < 64, f"garbage grew the proxy by {watch.growth_mib:.0f} MiB"
        s.check_good_clients()


def test_slow_client_is_closed_by_read_timeout():
    """One byte a second, never finishing its line: closed once it exceeds --read-timeout."""
    read_timeout = 2.0
    with stack(["--read-timeout", str(read_timeout)]) as s:
        timeouts_before = metric(s.admin, "cacheproxy_errors_total", kind="timeout")
        idle = connect(s.proxy.addr)  # sends nothing: not a partial request, so never read-timed-out
        slow = connect(s.proxy.addr)
        started = time.monotonic()
        closed_after = None
        for byte in b"get slowloris-key-without-end":
            try:
                slow.sendall(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                closed_after = time.monotonic() - started
                break
            if closed_by_peer(slow, 1.0):  # the one-second pause between bytes
                closed_after = time.monotonic() - started
                break
        slow.close()
        assert closed_after is not None, "a client trickling one byte a second was never closed"
        assert closed_after < read_timeout + 2.0, f"closed only after {closed_after:.1f}s"
        assert metric(s.admin, "cacheproxy_errors_total", kind="timeout") > timeouts_before
        assert not closed_by_peer(idle, 0.2), "an idle client was closed by the read timeout"
        idle.sendall(b"version\r\n")
        assert recv_until(idle, b"\r\n").startswith(b"VERSION ")
        idle.close()
        s.check_good_clients()


def test_slow_clients_without_read_timeout_stay_and_cost_nothing():
    """Without --read-timeout, 200 one-byte-a-second clients are served once their line ends."""
    with stack() as s:
        request = b"get slow-key\r\n"
        slow = [connect(s.proxy.addr) for _ in range(200)]
        with RssWatch(s.proxy.pid) as watch:
            for byte in request:  # one byte a second on every slow connection
                for sock in slow:
                    sock.sendall(bytes([byte]))
                for sock in slow[:1]:
                    assert not closed_by_peer(sock, 1.0)
        for sock in slow:
            assert recv_until(sock, b"END\r\n") == b"END\r\n"
            sock.close()
        assert watch.growth_mib < 8, f"200 slow clients cost {watch.growth_mib:.1f} MiB"
        s.check_good_clients()


def test_4gib_value_claims_are_answered_and_swallowed(memcached):
    """A 4 GiB length is memcached's CLIENT_ERROR; a 2 GiB one is refused and streamed past."""
    claim = b"set big 0 0 4294967295\r\n"
    with connect(memcached.addr) as direct:
        direct.sendall(claim)
        expected = recv_until(direct, b"\r\n")
    with stack() as s:
        with connect(s.proxy.addr) as sock:
            sock.sendall(claim)
            assert recv_until(sock, b"\r\n") == expected == b"CLIENT_ERROR bad command line format\r\n"
            sock.sendall(b"get big\r\n")
            assert recv_until(sock, b"END\r\n") == b"END\r\n"
        with connect(s.proxy.addr) as sock, RssWatch(s.proxy.pid) as watch:
            sock.sendall(b"set big 0 0 2147483645\r\n")  # the longest length memcached parses
            assert recv_until(sock, b"\r\n") == b"SERVER_ERROR object too large for cache\r\n"
            block = b"x" * (4 << 20)
            for _ in range(256):  # 1 GiB of the claimed value, swallowed as it streams
                sock.sendall(block)
        assert watch.growth_mib < 32, f"streaming a 2 GiB claim grew the proxy by {watch.growth_mib:.0f} MiB"
        s.check_good_clients()


def test_client_that_never_reads_its_answers():
    """Pipelined gets of a 128 KiB value, answers never read: reading pauses, memory stays put.

    Unbounded, the 2,000 gets below would buffer 250 MiB of answers in the proxy; a cap of a few
    hundred requests in flight per connection keeps it to tens of MiB."""
    value = b"v" * (128 * 1024)
    with stack() as s:
        with connect(s.proxy.addr) as sock:
            sock.sendall(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
            assert recv_until(sock, b"\r\n") == b"STORED\r\n"
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        host, port = s.proxy.addr.rsplit(":", 1)
        hog.connect((host, int(port)))
        hog.setblocking(False)
        gets = b"get big\r\n" * 2000  # 2,000 answers = 250 MiB if all were buffered
        sent = 0
        with RssWatch(s.proxy.pid) as watch:
            deadline = time.monotonic() + 8.0
            while time.monotonic() < deadline:  # keep pushing until the proxy stops reading us
                try:
                    sent += hog.send(gets[sent % len(gets):])
                except BlockingIOError:
                    if hog_stalled(hog, 1.0):
                        break
        hog.close()
        # kernel buffers (ours and the proxy's receive buffer) hold a few MiB at most
        assert sent < 16 << 20, f"the proxy read {sent} bytes of gets from a client that never reads"
        assert watch.growth_mib < 64, f"a non-reading client grew the proxy by {watch.growth_mib:.0f} MiB"
        s.check_good_clients()


def hog_stalled(sock: socket.socket, wait: float) -> bool:
    """True if SOCK stays unwritable for WAIT seconds (the proxy paused reading it)."""
    _, writable, _ = select.select([], [sock], [], wait)
    return not writable


def test_idle_clients_are_closed_by_idle_timeout():
    """--idle-timeout closes quiet connections, also ones that were served; busy ones stay."""
    idle_timeout = 2.0
    with stack(["--idle-timeout", str(idle_timeout)]) as s:
        fds_with_good = fd_count(s.proxy.pid)
        quiet = [connect(s.proxy.addr) for _ in range(100)]
        served = [connect(s.proxy.addr) for _ in range(20)]
        for sock in served:
            sock.sendall(b"version\r\n")
            assert recv_until(sock, b"\r\n").startswith(b"VERSION ")
        started = time.monotonic()
        for sock in quiet + served:
            assert closed_by_peer(sock, max(0.1, started + idle_timeout + 2.0 - time.monotonic())), (
                f"idle connection still open {time.monotonic() - started:.1f}s later")
            sock.close()
        wait_until(lambda: fd_count(s.proxy.pid), lambda n: n <= fds_with_good, 10, "proxy fds after idle close")
        assert metric(s.admin, "cacheproxy_errors_total", kind="timeout") >= 120
        s.check_good_clients()


def test_connection_flood_beyond_max_connections_is_closed_at_accept(memcached):
    """--max-connections: connections over the limit are closed at accept (docs/CONTRACT.md);
    the ones within it keep working."""
    from tests.support.procs import start_proxy

    proxy = start_proxy(memcached.addr, args=["--max-connections", "50"])
    socks: list[socket.socket] = []
    try:
        socks = [connect(proxy.addr) for _ in range(60)]
        wait_until(lambda: metric(proxy.extra["admin"], "cacheproxy_client_connections_total"), lambda n: n >= 60,
                   10, "connections accepted")
        over = [sock for sock in socks if closed_by_peer(sock, 0.2)]
        assert len(over) == 10, f"{len(over)} of 60 connections closed with --max-connections 50"
        assert metric(proxy.extra["admin"], "cacheproxy_client_connections") == 50
        for sock in socks:
            if sock not in over:
                sock.sendall(b"version\r\n")
                assert recv_until(sock, b"\r\n").startswith(b"VERSION ")
    finally:
        for sock in socks:
            sock.close()
        proxy.stop()
