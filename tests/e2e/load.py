"""Bounded memcached load over real TCP connections, and one-shot set/get checks.

`Load` keeps one connection per client (asyncio, text protocol), each doing paced `set` + `get`
of its own keys and checking every answer byte for byte, until a deadline. A client that loses its
connection or gets a wrong answer records the first failure and when it happened; with `reconnect`
it opens a new connection (through a Service: possibly to another pod) and goes on, counting drops.
An error answer the proxy gives on purpose (a ring member that is down) keeps the connection: it is
counted as degraded, with the answer kept for the test to judge.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# Longer than a pod's absence: a write whose key's owner pod is being replaced waits for it (ring.down_wait).
ANSWER_TIMEOUT = 20.0


@dataclass
class ClientStats:
    group: str
    address: str
    ops: int = 0
    failure: str | None = None
    failed_at: float | None = None
    drops: int = 0
    last_ok: float = 0.0
    reconnect_failures: list[str] = field(default_factory=list)
    degraded: int = 0
    degraded_answers: set[bytes] = field(default_factory=set)


def split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str, value: bytes) -> bytes:
    """`set` + `get` of KEY; b"" when both answered exactly, else the memcached error line the proxy gave
    (a ring member that is down: `SERVER_ERROR ...` for the set, a miss or an error for the get).
    A wrong value, a malformed answer, a timeout or a closed connection raise."""
    writer.write(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key.encode(), len(value), value, key.encode()))
    stored = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
    if stored != b"STORED\r\n" and not stored.startswith(b"SERVER_ERROR "):
        raise ValueError(f"unexpected answer to set: {stored!r}")
    line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
    if line.startswith(b"VALUE "):
        data = await asyncio.wait_for(reader.readexactly(int(line.split()[3]) + 2), ANSWER_TIMEOUT)
        end = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
        if end != b"END\r\n":
            raise ValueError(f"unexpected end of get: {end!r}")
        if stored != b"STORED\r\n":
            return stored.strip()  # the set failed: the value read may be an older one
        if data[:-2] != value:
            raise ValueError(f"wrong value for {key}: {data!r}")
        return b""
    if line == b"END\r\n" or line.startswith(b"SERVER_ERROR "):
        if stored != b"STORED\r\n":
            return stored.strip()
        return line.strip() if line.startswith(b"SERVER_ERROR ") else b"miss"
    raise ValueError(f"unexpected answer to get: {line!r}")


async def _client(index: int, stats: ClientStats, deadline: float, pace: float, reconnect: bool,
                  halted: threading.Event) -> None:
    host, port = split(stats.address)
    writer = None
    n = 0
    try:
        while time.monotonic() < deadline and not halted.is_set():
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), ANSWER_TIMEOUT)
                except (TimeoutError, OSError) as exc:
                    stats.reconnect_failures.append(f"{time.monotonic():.1f}: {exc!r}")
                    await asyncio.sleep(0.2)
                    continue
            try:
                answer = await _exchange(reader, writer, f"load:{stats.group}:{index}:{n % 32}", b"%d-%d" % (index, n))
                stats.ops += 1
                n += 1
                if answer:
                    stats.degraded += 1
                    if len(stats.degraded_answers) < 8:
                        stats.degraded_answers.add(answer[:100])
                else:
                    stats.last_ok = time.monotonic()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if stats.failure is None:
                    stats.failure, stats.failed_at = repr(exc), time.monotonic()
                stats.drops += 1
                writer.close()
                writer = None
                if not reconnect:
                    return
            await asyncio.sleep(pace)
    finally:
        if writer is not None:
            writer.close()


async def _run(clients: Sequence[tuple[ClientStats, bool]], seconds: float, pace: float,
               halted: threading.Event) -> None:
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(i, stats, deadline, pace, reconnect, halted)
                           for i, (stats, reconnect) in enumerate(clients)))


class Load(threading.Thread):
    """The clients in a background thread: start(), do something to the tier, join() (or halt() first)."""

    def __init__(self, groups: Sequence[tuple[str, str, int, bool]], seconds: float, pace: float = 0.1) -> None:
        """GROUPS: (name, address, clients, reconnect) each; every client runs for at most SECONDS."""
        super().__init__(daemon=True)
        self.clients = [(ClientStats(name, address), reconnect)
                        for name, address, count, reconnect in groups for _ in range(count)]
        self.seconds = seconds
        self.pace = pace
        self.error: BaseException | None = None
        self.halted = threading.Event()

    def halt(self) -> None:
        """Stop every client after its current request."""
        self.halted.set()

    def run(self) -> None:
        try:
            asyncio.run(_run(self.clients, self.seconds, self.pace, self.halted))
        except BaseException as exc:  # reported by the test through .error
            self.error = exc

    def group(self, name: str) -> list[ClientStats]:
        return [stats for stats, _ in self.clients if stats.group == name]


def set_and_get(address: str, key: str, value: bytes, timeout: float = 10.0) -> bytes | None:
    """`set` then `get` on one connection (through a Service: one pod); the value read back, None on a miss."""
    with socket.create_connection(split(address), timeout=timeout) as sock:
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))
        answer = read_line(sock)
        assert answer == b"STORED\r\n", f"set {key} on {address}: {answer!r}"
        return get_on(sock, key)


def get(address: str, key: str, timeout: float = 10.0) -> bytes | None:
    """`get` on a new connection; the value, or None on a miss."""
    with socket.create_connection(split(address), timeout=timeout) as sock:
        return get_on(sock, key)


def get_on(sock: socket.socket, key: str) -> bytes | None:
    sock.sendall(b"get %s\r\n" % key.encode())
    header = read_line(sock)
    if header == b"END\r\n":
        return None
    if not header.startswith(b"VALUE "):
        raise AssertionError(f"get {key}: {header!r}")
    length = int(header.split()[3])
    body = read_exactly(sock, length + 2)
    assert read_line(sock) == b"END\r\n"
    return body[:-2]


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data
