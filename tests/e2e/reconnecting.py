"""Clients of a rolling update: memcached text clients that reconnect when the server closes, each
doing set/get/delete on keys of its own and checking every answer against a model of the values.

Contract of one client (asyncio, one connection, one request at a time, paced):

* Its address is resolved at every connect: the Service's cluster IP, or a pod's DNS name
  (`NAME-i.NAME-headless.NS.svc.cluster.local`, asked of the cluster's DNS), so a client pinned to a
  pod finds the replacement pod, whose address is new.
* A request not yet written when the connection is found closed (end of stream seen, transport
  closing) is written after reconnecting: not a failure, the wait is counted (`waited_send`).
* An answer lost in flight (the connection ends after the request was written, before its whole
  answer arrived) is ambiguous: the request may or may not have run. It is sent once more on a new
  connection and counted as `retried`. That is sound for these requests only because each is
  idempotent for its client's own keys: `get`; `set` of the same value (no one else writes the key);
  `delete` (DELETED or NOT_FOUND both leave the key absent). A second loss is a failure. A client
  doing incr/append/cas could not retry this way, so the test asserts `retried` separately.
* Failures: an error answer (`SERVER_ERROR`, `ERROR`, `CLIENT_ERROR`), an answer that is not
  memcached's, no answer within ANSWER_TIMEOUT, a request that could not be written within
  SEND_TIMEOUT, a second loss.
* Stale read: a `get` answering a value other than the last acknowledged write of that key (or any
  value after an acknowledged delete); after a failed write either value is allowed. A miss is
  allowed (a restarted memcached starts empty) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception

ANSWER_TIMEOUT = 20.0
SEND_TIMEOUT = 60.0
KEYS_PER_CLIENT = 8
CONNECT_BACKOFF = (0.05, 0.5)

Resolve = Callable[[], Awaitable[tuple[str, int]]]  # where to connect now

@dataclass
class Tally:
    """What one group of clients saw (summed over its clients)."""

    ops: dict[str, int] = field(default_factory=lambda: {"set": 0, "get": 0, "delete": 0})
    hits: int = 0
    misses: int = 0
    stale: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retried: int = 0
    reconnects: int = 0
    waited_send: int = 0
    max_send_wait: float = 0.0
    max_latency: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.ops.values())

    def add(self, other: Tally) -> None:
        for kind, count in other.ops.items():
            self.ops[kind] += count
        self.hits += other.hits
        self.misses += other.misses
        self.stale += other.stale
        self.failures += other.failures
        self.retried += other.retried
        self.reconnects += other.reconnects
        self.waited_send += other.waited_send
        self.max_send_wait = max(self.max_send_wait, other.max_send_wait)
        self.max_latency = max(self.max_latency, other.max_latency)

    def summary(self) -> str:
        return (f"{self.requests} requests ({self.ops['set']} set, {self.ops['get']} get, {self.ops['delete']} delete),"
                f" {len(self.failures)} failed, {len(self.stale)} stale, {self.retried} retried after a lost"
                f" answer, {self.misses} misses / {self.hits} hits, {self.reconnects} reconnects,"
                f" {self.waited_send} waited to send (max {self.max_send_wait:.1f}s),"
                f" max latency {self.max_latency:.2f}s")


class _Lost(Exception):
    """The connection ended after the request was written, before its answer was complete."""


class Client:
    """One reconnecting client; see the module docstring."""

    def __init__(self, index: int, group: str, resolve: Resolve, pace: float, phase: list[str]) -> None:
        self.index, self.group, self.resolve, self.pace = index, group, resolve, pace
        self.phase = phase  # the name of what the tier is going through now, set by the test
        self.tallies: dict[str, Tally] = {}
        self.allowed: dict[bytes, set[bytes]] = {}  # key -> values a get may answer (a miss always may)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connected_once = False

    @property
    def tally(self) -> Tally:
        """The tally of the current phase."""
        phase = self.phase[0]
        tally = self.tallies.get(phase)
        if tally is None:
            tally = self.tallies[phase] = Tally()
        return tally

    def fail(self, what: str) -> None:
        self.tally.failures.append(f"{time.strftime('%H:%M:%S')} {self.group}[{self.index}] {what}")

    # -- the connection ---------------------------------------------------------------------

    def _usable(self) -> bool:
        return (self.writer is not None and self.reader is not None and not self.writer.is_closing()
                and not self.reader.at_eof() and self.reader.exception() is None)

    def _drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _connect(self, deadline: float) -> bool:
        backoff = CONNECT_BACKOFF[0]
        while time.monotonic() < deadline:
            try:
                host, port = await self.resolve()
                self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
                if self.connected_once:
                    self.tally.reconnects += 1
                self.connected_once = True
                return True
            except (TimeoutError, OSError, dns.exception.DNSException):
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(CONNECT_BACKOFF[1], backoff * 2)
        return False

    async def _exchange(self, request: bytes, read: Callable[[asyncio.StreamReader], object]) -> object:
        """REQUEST's answer, as READ parses it; raises _Lost, TimeoutError, or returns None when it
        could not be written within SEND_TIMEOUT (a failure already counted)."""
        started = time.monotonic()
        lost = False
        while True:
            if not self._usable():
                self._drop()
                if not await self._connect(started + SEND_TIMEOUT):
                    self.fail(f"could not send within {SEND_TIMEOUT:.0f}s")
                    return None
                waited = time.monotonic() - started
                if waited > 0.5:
                    self.tally.waited_send += 1
                    self.tally.max_send_wait = max(self.tally.max_send_wait, waited)
            assert self.reader is not None and self.writer is not None
            sent_at = time.monotonic()
            try:
                self.writer.write(request)
                answer = await asyncio.wait_for(read(self.reader), ANSWER_TIMEOUT)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
                self._drop()
                if lost:
                    raise _Lost(repr(exc)) from None
                lost = True
                self.tally.retried += 1
                continue
            self.tally.max_latency = max(self.tally.max_latency, time.monotonic() - sent_at)
            return answer

    # -- the requests -----------------------------------------------------------------------

    async def run(self, stop: threading.Event, deadline: float) -> None:
        rng = random.Random(f"{self.group}:{self.index}")
        n = 0
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                key = f"roll:{self.group}:{self.index}:{rng.randrange(KEYS_PER_CLIENT)}".encode()
                roll = rng.random()
                kind = "get" if roll < 0.5 else "set" if roll < 0.85 else "delete"
                try:
                    if kind == "set":
                        await self._set(key, f"{self.group}:{self.index}:{n}".encode())
                    elif kind == "get":
                        await self._get(key)
                    else:
                        await self._delete(key)
                except TimeoutError:
                    self.fail(f"{kind} {key.decode()}: no answer within {ANSWER_TIMEOUT:.0f}s")
                    self._drop()
                except _Lost as exc:
                    self.fail(f"{kind} {key.decode()}: answer lost twice ({exc})")
                except ValueError as exc:
                    self.fail(f"{kind} {key.decode()}: {exc}")
                    self._drop()
                self.tally.ops[kind] += 1
                n += 1
                await asyncio.sleep(self.pace * rng.uniform(0.5, 1.5))
        finally:
            self._drop()

    async def _set(self, key: bytes, value: bytes) -> None:
        answer = await self._exchange(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), _line)
        if answer == b"STORED\r\n":
            self.allowed[key] = {value}
            return
        self.allowed.setdefault(key, set()).add(value)  # it may or may not have been written
        if answer is not None:
            self.fail(f"set {key.decode()}: {answer!r}")

    async def _delete(self, key: bytes) -> None:
        answer = await self._exchange(b"delete %s\r\n" % key, _line)
        if answer in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
            self.allowed[key] = set()
        elif answer is not None:
            self.fail(f"delete {key.decode()}: {answer!r}")

    async def _get(self, key: bytes) -> None:
        answer = await self._exchange(b"get %s\r\n" % key, _get_answer)
        if answer is None:
            return
        if isinstance(answer, bytes) and answer.startswith((b"SERVER_ERROR", b"ERROR", b"CLIENT_ERROR")):
            self.fail(f"get {key.decode()}: {answer!r}")
        elif answer == b"":
            self.tally.misses += 1
        elif isinstance(answer, tuple):
            value = answer[0]
            self.tally.hits += 1
            if value not in self.allowed.get(key, set()):
                self.tally.stale.append(f"{self.group}[{self.index}] get {key.decode()}: {value!r}, "
                                        f"allowed {sorted(self.allowed.get(key, set()))!r}")


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readuntil(b"\r\n")
    return line


async def _get_answer(reader: asyncio.StreamReader) -> bytes | tuple[bytes]:
    """(value,) for a hit, b"" for a miss, the error line for an error."""
    line = await reader.readuntil(b"\r\n")
    if line == b"END\r\n":
        return b""
    if line.startswith(b"VALUE "):
        data = await reader.readexactly(int(line.split()[3]) + 2)
        end = await reader.readuntil(b"\r\n")
        if end != b"END\r\n":
            raise ValueError(f"get: {end!r} after the value")
        return (data[:-2],)
    if line.startswith((b"SERVER_ERROR", b"ERROR", b"CLIENT_ERROR")):
        return line
    raise ValueError(f"get: {line!r}")


class ClusterDNS:
    """A pod's name asked of the cluster's DNS server at every connect."""

    def __init__(self, nameserver: str) -> None:
        self.resolver = dns.asyncresolver.Resolver(configure=False)
        self.resolver.nameservers = [nameserver]
        self.resolver.lifetime = 2.0

    def address(self, name: str, port: int) -> Resolve:
        async def resolve() -> tuple[str, int]:
            answer = await self.resolver.resolve(name, "A")
            return answer[0].address, port
        return resolve


def fixed(host: str, port: int) -> Resolve:
    async def resolve() -> tuple[str, int]:
        return host, port
    return resolve


class RollingLoad(threading.Thread):
    """The clients in a background thread: start(), change the tier, halt(), join(); then tally()."""

    def __init__(self, groups: list[tuple[str, Resolve, int]], pace: float,
                 max_seconds: float) -> None:
        """GROUPS: (name, how to find the address, clients) each; every client stops after MAX_SECONDS."""
        super().__init__(daemon=True)
        self.phase = ["start"]
        self.clients = [Client(i, name, resolve, pace, self.phase) for name, resolve, count in groups
                        for i in range(count)]
        self.max_seconds = max_seconds
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def enter(self, phase: str) -> None:
        """Count what happens from now on under PHASE (a request under way counts where it ends)."""
        self.phase[0] = phase

    def halt(self) -> None:
        self.stop.set()

    def run(self) -> None:
        async def main() -> None:
            deadline = time.monotonic() + self.max_seconds
            await asyncio.gather(*(client.run(self.stop, deadline) for client in self.clients))
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test through .error
            self.error = exc

    def served(self, phase: str) -> int:
        """How many clients have had a request answered in PHASE."""
        return sum(1 for client in self.clients if phase in client.tallies and client.tallies[phase].requests)

    def tally(self, phase: str, group: str | None = None) -> Tally:
        """PHASE's sum over GROUP's clients (every client's when None). Read while running: a snapshot."""
        total = Tally()
        for client in self.clients:
            if (group is None or client.group == group) and phase in client.tallies:
                with contextlib.suppress(RuntimeError):  # a list growing while it is summed
                    total.add(client.tallies[phase])
        return total
