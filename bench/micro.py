"""The proxy's own Python cost per request, without sockets: a development tool, not a benchmark of record.

Real ClientConnection/TextSession/L1Only/BackendPool objects are wired to fake transports (a write
only counts), so what is timed is exactly the Python work of a request: parse, dispatch, the backend
command, reading the backend's answer, rendering the client's answer. Each round, every client sends
one request (``get``, or ``set`` for --sets of them) and then the pooled backend connection receives all
the answers in one read, as under the closed-loop bench; with --owned (L1Only without batching) every
client has its own backend connection, which gets its client's answer in a read of its own. The best
of --repeat timings is printed, in µs per request. With 10,000 clients the objects no longer fit in
the CPU caches, as in the real run.

    python bench/micro.py                      # 10,000 clients, gets only, then 10% sets
    python bench/micro.py --clients 1000 --rounds 100
    python bench/micro.py --owned              # one backend connection per client

Compare two trees by running it with ``PYTHONPATH=<tree>/service``; the bench harness (run.py) remains
the measure of record: this leaves out the kernel and uvloop, which are half of the real cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))

from cacheproxy.app import Port, Runtime
from cacheproxy.backends.address import Address
from cacheproxy.backends.connection import OPEN, BackendConnection
from cacheproxy.backends.pool import BackendPool
from cacheproxy.backends.sweeper import track
from cacheproxy.config import load
from cacheproxy.handlers.plain import PlainHandler
from cacheproxy.orcas.l1only import L1Only
from cacheproxy.server.connection import ClientConnection
from cacheproxy.server.sessions import start_session

VALUE = b"x" * 100
HIT = b"VA 100 f0\r\n" + VALUE + b"\r\n"


class CountingTransport:
    """Just enough of an asyncio transport: writes are counted, never sent."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def open_backend(conn: BackendConnection) -> BackendConnection:
    conn.transport, conn.state = CountingTransport(), OPEN  # type: ignore[assignment]
    return conn


async def measure(clients: int, rounds: int, repeat: int, set_every: int, owned: bool) -> float:
    runtime = Runtime(load(None, {"l1": "127.0.0.1:1"}), asyncio.get_running_loop())
    pool = BackendPool(Address("127.0.0.1", 1), "l1", size=1)
    backend = open_backend(pool._new())
    # as compose.py builds L1Only without batching: each client's first request takes the next connection
    owns = [open_backend(track(BackendConnection(Address("127.0.0.1", 1)))) for _ in range(clients if owned else 0)]
    unused = iter(owns)
    port = Port(runtime, (lambda: L1Only(PlainHandler(next(unused), owned=True))) if owned
                else (lambda: L1Only(PlainHandler(pool.lane()))))
    conns = []
    for _ in range(clients):
        conn = ClientConnection(port, start_session)
        conn.connection_made(CountingTransport())  # type: ignore[arg-type]
        conns.append(conn)
    is_set = [set_every and i % set_every == 0 for i in range(clients)]
    requests = [b"set key:%d 0 0 100\r\n%b\r\n" % (i, VALUE) if s else b"get key:%d\r\n" % i
                for i, s in enumerate(is_set)]
    # memcached's answers: a plain get travels as meta, a plain set as the client wrote it
    answers = [b"STORED\r\n" if s else HIT for s in is_set]
    joined = b"".join(answers)

    def one_round() -> None:
        for conn, request in zip(conns, requests, strict=True):
            conn.data_received(request)
        if owned:
            for own, answer in zip(owns, answers, strict=True):
                own.data_received(answer)
        else:
            backend.flush_out()
            backend.data_received(joined)

    one_round()
    gc.disable()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            one_round()
        best = min(best, time.perf_counter() - start)
    gc.enable()
    if conns[-1].transport.writes < rounds * repeat:  # type: ignore[union-attr]
        raise SystemExit("answers did not reach the clients: the measurement is void")
    return best / rounds / clients * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7, help="timings taken; the best is printed")
    parser.add_argument("--owned", action="store_true", help="L1Only without batching: a backend connection per client")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    for label, set_every in (("gets", 0), ("90% get / 10% set", 10)):
        us = asyncio.run(measure(args.clients, args.rounds, args.repeat, set_every, args.owned))
        print(f"{label:>18}: {us:.2f} µs of Python per request ({args.clients:,} clients, best of {args.repeat})")


if __name__ == "__main__":
    main()
