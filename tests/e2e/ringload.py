"""Writes, deletes and reads over a preloaded key set from many client connections, checked against a
model of what each key holds, while the tier's ring changes.

Each key has one writer (a client connection doing `set` with a value never used before, or
`delete`, one request at a time), and every client reads any key, so a read through one pod follows
writes through another. Every request is timed (monotonic clock, one process). After the run,
`Model.verdict` judges each read against its key's history:

- stale: the value read was overwritten or deleted by a request that had been answered before the
  read was sent (or the key had been deleted and the read found a value);
- a miss counts against the hit ratio when the key held a value written (or preloaded) before the
  read began and no write of it overlapped the read.

Clients follow the pods' addresses (`set_addresses`, from the test's view of ready, non-terminating
pods): client i uses address i mod n; when its address changes (a pod added, or one being deleted,
which the preStop pause leaves time for) it finishes its request, closes and reconnects. A
connection closed by anything else, a timeout, a malformed answer or a value never written is a
dropped connection; an error line (SERVER_ERROR, ERROR, CLIENT_ERROR) is an error answer (the
connection stays). Bounded: a fixed number of clients, each pacing its requests, until a deadline.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

ANSWER_TIMEOUT = 10.0
WINDOW_SECONDS = 5.0


@dataclass
class KeyHistory:
    """The writer's requests on one key, in order: (sent, answered, value or None for a delete)."""

    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    index_of: dict[bytes, int] = field(default_factory=dict)
    uncertain_from: float | None = None  # a write whose outcome is unknown (error, drop): judge no further

    def record(self, sent: float, answered: float, value: bytes | None) -> None:
        self.sent.append(sent)
        self.answered.append(answered)
        self.values.append(value)
        if value is not None:
            self.index_of[value] = len(self.values) - 1


@dataclass
class Read:
    key: str
    sent: float
    answered: float
    value: bytes | None


@dataclass
class Verdict:
    reads: int = 0
    writes: int = 0
    stale: list[str] = field(default_factory=list)
    stale_at: list[float] = field(default_factory=list)  # seconds into the run
    hits: int = 0
    misses: int = 0
    windows: list[tuple[float, int, int]] = field(default_factory=list)  # (start, hits, misses)

    @property
    def hit_ratio(self) -> float:
        return self.hits / max(1, self.hits + self.misses)

    def worst_window(self, minimum: int = 100) -> float:
        """The lowest hit ratio of a WINDOW_SECONDS window with at least MINIMUM judged reads."""
        ratios = [h / (h + m) for _, h, m in self.windows if h + m >= minimum]
        return min(ratios, default=1.0)


class Model:
    """What every key should hold: the preload and each writer's answered requests."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyHistory] = {}
        self.reads: list[Read] = []

    def verdict(self, start: float) -> Verdict:
        out = Verdict(writes=sum(len(h.values) for h in self.keys.values()))
        windows: dict[int, list[int]] = {}
        for read in self.reads:
            history = self.keys[read.key]
            if history.uncertain_from is not None and read.sent >= history.uncertain_from:
                continue
            out.reads += 1
            # the last request answered before the read was sent: nothing older may be read
            last = bisect.bisect_left(history.answered, read.sent) - 1
            overlapping = any(s < read.answered for s in history.sent[last + 1:])
            if read.value is not None:
                index = history.index_of.get(read.value)
                if index is None or index < last or (index > last and history.sent[index] >= read.answered):
                    out.stale.append(f"{read.key}: read {read.value!r} at {read.sent - start:.3f}s, "
                                     f"last answered write {history.values[last]!r}")
                    out.stale_at.append(read.sent - start)
                    continue
            if last < 0 or history.values[last] is None or overlapping:
                continue  # deleted, or a write under way: no hit or miss to count
            hit = read.value == history.values[last]
            out.hits += hit
            out.misses += not hit
            bucket = windows.setdefault(int((read.sent - start) // WINDOW_SECONDS), [0, 0])
            bucket[0 if hit else 1] += 1
        out.windows = [(k * WINDOW_SECONDS, h, m) for k, (h, m) in sorted(windows.items())]
        return out


class Dropped(Exception):
    """The connection broke or answered something a memcached never would."""


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        raise Dropped(repr(exc)) from exc
    if not line.endswith(b"\r\n"):
        raise Dropped(f"connection closed after {line!r}")
    return line


def _is_error(line: bytes) -> bool:
    return line.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR"))


class RingLoad(threading.Thread):
    """CLIENTS connections for at most SECONDS over KEYS preloaded keys; start(), change the tier, stop()."""

    def __init__(self, addresses: Sequence[str], clients: int, keys: int, seconds: float, pace: float,
                 seed: int = 7) -> None:
        super().__init__(daemon=True)
        self.addresses = tuple(addresses)
        self.clients, self.seconds, self.pace = clients, seconds, pace
        self.names = [f"ringload:{seed}:{i}" for i in range(keys)]
        self.model = Model()
        self.random = random.Random(seed)
        self.started_at = 0.0
        self.preloaded = threading.Event()
        self.halted = threading.Event()
        self.error: BaseException | None = None
        self.dropped: list[str] = []
        self.errors: list[str] = []
        self.moves = 0
        self.connects = 0
        self.requests = 0

    def set_addresses(self, addresses: Sequence[str]) -> None:
        """The pods clients should use from now on (a tuple swap: atomic for the load's thread)."""
        if addresses:
            self.addresses = tuple(sorted(addresses))

    def stop(self) -> None:
        self.halted.set()
        self.join(ANSWER_TIMEOUT * 3)

    def run(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < self.clients + 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, self.clients + 1024), hard))
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the test through .error
            self.error = exc

    async def _main(self) -> None:
        for name in self.names:
            self.model.keys[name] = KeyHistory()
        await asyncio.gather(*(self._preload(part) for part in range(8)))
        self.preloaded.set()
        self.started_at = time.monotonic()
        deadline = self.started_at + self.seconds
        await asyncio.gather(*(self._client(i, deadline) for i in range(self.clients)))

    async def _preload(self, part: int) -> None:
        reader, writer = await asyncio.open_connection(*self.addresses[part % len(self.addresses)].rsplit(":", 1))
        try:
            for name in self.names[part::8]:
                value = f"{name}:preload".encode()
                sent = time.monotonic()
                writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (name.encode(), len(value), value))
                answer = await _line(reader)
                if answer != b"STORED\r\n":
                    raise AssertionError(f"preload of {name}: {answer!r}")
                self.model.keys[name].record(sent, time.monotonic(), value)
        finally:
            writer.close()

    async def _client(self, index: int, deadline: float) -> None:
        rng = random.Random(index)
        own = self.names[index::self.clients]
        counter = 0
        await asyncio.sleep(rng.random() * self.pace)  # spread the first requests
        while time.monotonic() < deadline and not self.halted.is_set():
            address = self.addresses[index % len(self.addresses)]
            host, port = address.rsplit(":", 1)
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), ANSWER_TIMEOUT)
            except (TimeoutError, OSError) as exc:
                self.dropped.append(f"connect to {address}: {exc!r}")
                return
            self.connects += 1
            try:
                while time.monotonic() < deadline and not self.halted.is_set():
                    if self.addresses[index % len(self.addresses)] != address:
                        self.moves += 1
                        break  # a graceful close between requests: the pod set changed
                    counter += 1
                    choice = rng.random()
                    if own and choice < 0.25:
                        await self._write(reader, writer, rng.choice(own), f"{index}-{counter}".encode(),
                                          delete=choice < 0.05)
                    else:
                        await self._read(reader, writer, rng.choice(self.names))
                    self.requests += 1
                    await asyncio.sleep(self.pace * (0.5 + rng.random()))
            except Dropped as exc:
                self.dropped.append(f"client {index} on {address}: {exc}")
                return
            finally:
                writer.close()

    async def _write(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str,
                     value: bytes, delete: bool) -> None:
        history = self.model.keys[key]
        sent = time.monotonic()
        if delete:
            writer.write(b"delete %s\r\n" % key.encode())
            expected: tuple[bytes, ...] = (b"DELETED\r\n", b"NOT_FOUND\r\n")
        else:
            writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))
            expected = (b"STORED\r\n",)
        try:
            answer = await _line(reader)
        except Dropped:
            history.uncertain_from = sent if history.uncertain_from is None else history.uncertain_from
            raise
        if answer in expected:
            history.record(sent, time.monotonic(), None if delete else value)
            return
        history.uncertain_from = sent if history.uncertain_from is None else history.uncertain_from
        if _is_error(answer):
            self.errors.append(f"{'delete' if delete else 'set'} {key}: {answer!r}")
            return
        raise Dropped(f"unexpected answer to a write of {key}: {answer!r}")

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
        sent = time.monotonic()
        writer.write(b"get %s\r\n" % key.encode())
        line = await _line(reader)
        value: bytes | None = None
        if line.startswith(b"VALUE "):
            try:
                data = await asyncio.wait_for(reader.readexactly(int(line.split()[3]) + 2), ANSWER_TIMEOUT)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                raise Dropped(repr(exc)) from exc
            if await _line(reader) != b"END\r\n":
                raise Dropped(f"get {key}: no END after the value")
            value = data[:-2]
        elif _is_error(line):
            self.errors.append(f"get {key}: {line!r}")
            return
        elif line != b"END\r\n":
            raise Dropped(f"unexpected answer to get {key}: {line!r}")
        self.model.reads.append(Read(key, sent, time.monotonic(), value))
