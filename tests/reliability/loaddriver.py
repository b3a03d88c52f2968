"""Well-behaved clients for the reliability tests, in a process of their own.

    python -m tests.reliability.loaddriver HOST:PORT --conns N [--rate R] [--seconds S] [--prefix P]

Opens N connections (in waves: the listen backlog is finite), has each do one set+get round,
prints ``READY <connected>`` and then keeps every connection doing rounds of ``set k`` + ``get k``
on a key of its own (R rounds per second per connection, or back to back with R=0) until stdin
reaches EOF or S seconds pass. Then it prints one JSON line (see :class:`Tally`).

Every answer is checked. A connection owns its key, so a ``get`` may only return a value this
connection may have stored: the one just STORED, or, after a set answered SERVER_ERROR (which
memcached may or may not have applied), one of those. A set answered SERVER_ERROR may also land
*later*, after a newer set was STORED: a paused memcached still holds it, unread, on a connection
the proxy gave up on, and executes it when it resumes (as it would for any client that timed out).
Such a value is counted as *late*, not wrong. Anything else (another value, a broken frame, an
unexpected line) is *wrong*. A miss right after STORED is *lost* (only legitimate when
memcached lost its data, i.e. it was killed). SERVER_ERROR answers are *errors*. A request whose
answer never came because the connection closed or stalled is a *failure*. Errors, losses and
failures carry the CLOCK_MONOTONIC time the request was sent (the clock is system-wide, so the
test compares it with the times at which it killed, stopped or signalled processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field

from tests.support.procs import client_process_setup

WAVE = 500
ANSWER_TIMEOUT = 15.0
MAX_EVENTS = 20_000


@dataclass
class Tally:
    connected: int = 0
    connect_errors: int = 0
    rounds_ok: int = 0
    wrong: int = 0
    late: int = 0
    errors: int = 0
    lost: int = 0
    failures: int = 0
    error_times: list[float] = field(default_factory=list)
    lost_times: list[float] = field(default_factory=list)
    failure_events: list[tuple[float, str]] = field(default_factory=list)
    wrong_samples: list[str] = field(default_factory=list)
    late_samples: list[str] = field(default_factory=list)
    ok_per_100ms: dict[int, int] = field(default_factory=dict)
    last_ok: float = 0.0

    def ok(self, now: float) -> None:
        self.rounds_ok += 1
        bucket = int(now * 10)
        self.ok_per_100ms[bucket] = self.ok_per_100ms.get(bucket, 0) + 1
        self.last_ok = now

    def error(self, sent: float) -> None:
        self.errors += 1
        if len(self.error_times) < MAX_EVENTS:
            self.error_times.append(sent)

    def lose(self, sent: float) -> None:
        self.lost += 1
        if len(self.lost_times) < MAX_EVENTS:
            self.lost_times.append(sent)

    def fail(self, sent: float, kind: str) -> None:
        self.failures += 1
        if len(self.failure_events) < MAX_EVENTS:
            self.failure_events.append((sent, kind))

    def bad(self, what: str) -> None:
        self.wrong += 1
        if len(self.wrong_samples) < 20:
            self.wrong_samples.append(what)

    def late_write(self, what: str) -> None:
        self.late += 1
        if len(self.late_samples) < 20:
            self.late_samples.append(what)


class Wrong(Exception):
    pass


class Client:
    """One connection and the values its key may hold (None: absent)."""

    def __init__(self, index: int, prefix: bytes, size: int, reader, writer) -> None:
        self.key = b"%s%d" % (prefix, index)
        self.size = size
        self.reader, self.writer = reader, writer
        self.possible: set[bytes | None] = {None}
        self.unconfirmed: set[bytes] = set()  # every value whose set was answered SERVER_ERROR
        self.round = 0

    async def one_round(self, tally: Tally) -> None:
        """set + get, pipelined in one write; every answer is checked."""
        self.round += 1
        stem = b"%s-%d-" % (self.key, self.round)
        value = (stem * (self.size // len(stem) + 1))[: max(self.size, len(stem))]
        sent = time.monotonic()
        self.writer.write(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (self.key, len(value), value, self.key))
        try:
            await asyncio.wait_for(self._answers(value, sent, tally), ANSWER_TIMEOUT)
        except Wrong as exc:
            tally.bad(str(exc))
            raise
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            tally.fail(sent, type(exc).__name__)
            raise
        except TimeoutError:
            tally.fail(sent, "timeout")
            raise

    async def _answers(self, value: bytes, sent: float, tally: Tally) -> None:
        reader = self.reader
        line = await reader.readuntil(b"\r\n")
        round_ok = True
        if line == b"STORED\r\n":
            self.possible = {value}
        elif line.startswith(b"SERVER_ERROR"):
            self.possible.add(value)
            self.unconfirmed.add(value)
            tally.error(sent)
            round_ok = False
        else:
            raise Wrong(f"set {self.key!r}: {line[:80]!r}")
        line = await reader.readuntil(b"\r\n")
        if line.startswith(b"VALUE "):
            parts = line.split()
            if len(parts) != 4 or parts[1] != self.key or parts[2] != b"0":
                raise Wrong(f"get {self.key!r}: header {line[:80]!r}")
            data = await reader.readexactly(int(parts[3]) + 2)
            end = await reader.readuntil(b"\r\n")
            if data[-2:] != b"\r\n" or end != b"END\r\n":
                raise Wrong(f"get {self.key!r}: {data[:60]!r} {end[:20]!r}: broken frame")
            if data[:-2] not in self.possible:
                if data[:-2] not in self.unconfirmed:
                    raise Wrong(f"get {self.key!r}: {data[:60]!r} not in {len(self.possible)} possible")
                tally.late_write(f"get {self.key!r} round {self.round}: {data[:40]!r}, a set answered SERVER_ERROR")
        elif line == b"END\r\n":
            if None not in self.possible:
                tally.lose(sent)
                round_ok = False
            self.possible = {None}
        elif line.startswith(b"SERVER_ERROR"):
            tally.error(sent)
            round_ok = False
        else:
            raise Wrong(f"get {self.key!r}: {line[:80]!r}")
        if round_ok:
            tally.ok(time.monotonic())


async def open_all(host: str, port: int, n: int, tally: Tally, deadline: float) -> list[tuple]:
    """Connect in waves of WAVE; a wave's failures are retried a few times (backlog overflow)."""
    conns: list[tuple] = []
    for start in range(0, n, WAVE):
        target = min(n, start + WAVE)
        for _attempt in range(5):
            want = target - len(conns)
            if want <= 0 or time.monotonic() > deadline:
                break
            results = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(want)),
                                           return_exceptions=True)
            for res in results:
                if isinstance(res, BaseException):
                    tally.connect_errors += 1
                else:
                    conns.append(res)
    return conns


async def run(args: argparse.Namespace) -> Tally:
    host, port = args.addr.rsplit(":", 1)
    tally = Tally()
    t_end = time.monotonic() + args.seconds
    pairs = await open_all(host, int(port), args.conns, tally, t_end)
    clients = [Client(i, args.prefix.encode(), args.size, r, w) for i, (r, w) in enumerate(pairs)]
    first = await asyncio.gather(*(c.one_round(tally) for c in clients), return_exceptions=True)
    alive = [c for c, res in zip(clients, first, strict=True) if not isinstance(res, BaseException)]
    tally.connected = len(alive)
    print(f"READY {len(alive)}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(65536) or stop.set())
    loop.call_at(loop.time() + max(0.0, t_end - time.monotonic()), stop.set)

    async def keep_going(client: Client, offset: float) -> None:
        period = 1.0 / args.rate if args.rate else 0.0
        next_at = time.monotonic() + offset * period
        try:
            while not stop.is_set():
                if period:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            return
                        except TimeoutError:
                            pass
                    next_at = max(next_at + period, time.monotonic() - period)
                await client.one_round(tally)
        except (Wrong, asyncio.IncompleteReadError, ConnectionError, OSError, TimeoutError):
            return  # counted; this connection is finished (the proxy closed it or broke it)
        finally:
            client.writer.close()

    n = max(1, len(alive))
    await asyncio.gather(*(keep_going(c, i / n) for i, c in enumerate(alive)))
    loop.remove_reader(sys.stdin.fileno())
    return tally


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--rate", type=float, default=1.0, help="rounds per second per connection; 0: back to back")
    p.add_argument("--seconds", type=float, default=120.0, help="hard bound on the run")
    p.add_argument("--prefix", default="rel")
    p.add_argument("--size", type=int, default=32, help="value size in bytes")
    p.add_argument("--out", help="write the JSON tally to this file instead of stdout")
    args = p.parse_args()
    client_process_setup()
    tally = asyncio.run(run(args))
    text = json.dumps(asdict(tally))
    if args.out:  # a file: a tally of several hundred KiB must not depend on pipe writes
        with open(args.out, "w") as f:
            f.write(text)
        print("DONE", flush=True)
    else:
        print(text, flush=True)


if __name__ == "__main__":
    main()
