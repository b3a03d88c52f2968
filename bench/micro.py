"""The proxy's own Python cost per request, without sockets: a development tool, not a benchmark of record.

Real ClientConnection/TextSession/L1Only/BackendPool objects are wired to fake transports (a write
only counts), so what is timed is exactly the Python work of a request: parse, dispatch, the backend
command, reading the backend's answer, rendering the client's answer. Each round, every client sends
one request (``get``, or ``set`` for --sets of them) and then the pooled backend connection receives all
the answers in one read, as under the closed-loop bench. The best of --repeat timings is printed, in
µs per request. With 10,000 clients the objects no longer fit in the CPU caches, as in the real run.

    python bench/micro.py                      # 10,000 clients, gets only, then 10% sets
    python bench/micro.py --clients 1000 --rounds 100

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

from cacheproxy.app import Runtime
from cacheproxy.backends.address import Address
from cacheproxy.backends.connection import OPEN
from cacheproxy.backends.pool import BackendPool
from cacheproxy.config import load
from cacheproxy.orcas.l1only import L1Only
from cacheproxy.server.connection import ClientConnection

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


async def measure(clients: int, rounds: int, repeat: int, set_every: int) -> float:
    runtime = Runtime(load(None, {"l1": "127.0.0.1:1"}), asyncio.get_running_loop())
    pool = BackendPool(Address("127.0.0.1", 1), "l1", size=1)
    backend = pool._new()
    backend.transport, backend.state = CountingTransport(), OPEN  # type: ignore[assignment]
    runtime.new_orca = lambda: L1Only(pool.lane(), owned=False)
    conns = []
    for _ in range(clients):
        conn = ClientConnection(runtime)
        conn.connection_made(CountingTransport())  # type: ignore[arg-type]
        conns.append(conn)
    is_set = [set_every and i % set_every == 0 for i in range(clients)]
    requests = [b"set key:%d 0 0 100\r\n%b\r\n" % (i, VALUE) if s else b"get key:%d\r\n" % i
                for i, s in enumerate(is_set)]
    # memcached's answers: a plain get travels as meta, a plain set as the client wrote it
    answers = b"".join(b"STORED\r\n" if s else HIT for s in is_set)

    def one_round() -> None:
        for conn, request in zip(conns, requests, strict=True):
            conn.data_received(request)
        backend.flush_out()
        backend.data_received(answers)

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
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    for label, set_every in (("gets", 0), ("90% get / 10% set", 10)):
        us = asyncio.run(measure(args.clients, args.rounds, args.repeat, set_every))
        print(f"{label:>18}: {us:.2f} µs of Python per request ({args.clients:,} clients, best of {args.repeat})")


if __name__ == "__main__":
    main()
