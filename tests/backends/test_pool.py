"""How the batched pool spreads clients over its connections, against a real memcached: a client's
lane takes a connection with fewer than ``grow_at`` requests in flight, even one still connecting,
and the pool opens another only when every connection it has is that busy. So a burst of clients
at start-up shares the first connection (their requests leave in one write) instead of opening
the whole pool, and a busy pool still grows to its size and then takes the least busy connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cacheproxy.backends.address import parse_address
from cacheproxy.backends.connection import OPEN
from cacheproxy.backends.pool import BackendPool, Lane
from cacheproxy.protocol.meta import META

from tests.support.procs import Proc, start_memcached


@pytest.fixture(scope="module")
def memcached() -> Iterator[Proc]:
    proc = start_memcached()
    yield proc
    proc.stop()


def send_through(lanes: list[Lane], answers: list[asyncio.Future]) -> None:
    loop = asyncio.get_running_loop()
    for i, lane in enumerate(lanes):
        done = loop.create_future()
        lane.send(b"mg pool:%d v\r\n" % i, META, done.set_result)
        answers.append(done)


def test_a_burst_of_clients_shares_the_connection_still_connecting(memcached: Proc) -> None:
    async def scenario() -> None:
        pool = BackendPool(parse_address(memcached.addr), "l1", size=8, grow_at=32)
        try:
            answers: list[asyncio.Future] = []
            lanes = []
            for _ in range(40):  # each client picks its lane with its first request, as the server does
                lane = pool.lane()
                send_through([lane], answers)
                lanes.append(lane)
            assert len(pool.conns) == 2, [len(c.pending) for c in pool.conns]
            assert [lane.conn for lane in lanes] == [pool.conns[0]] * 32 + [pool.conns[1]] * 8
            got = await asyncio.wait_for(asyncio.gather(*answers), 5.0)
            assert [a.code for a in got] == [b"EN"] * 40
            assert all(c.state == OPEN and not c.pending for c in pool.conns)
        finally:
            pool.close()

    asyncio.run(scenario())


def test_a_busy_pool_grows_to_its_size_then_takes_the_least_busy(memcached: Proc) -> None:
    async def scenario() -> None:
        pool = BackendPool(parse_address(memcached.addr), "l1", size=3, grow_at=4)
        try:
            answers: list[asyncio.Future] = []
            first = pool.lane()
            send_through([first] * 4, answers)  # one client with 4 in flight: the first connection is full
            second = pool.lane()
            send_through([second] * 4, answers)
            third = pool.lane()
            send_through([third], answers)
            assert len(pool.conns) == 3 and [second.conn, third.conn] == pool.conns[1:]
            fourth = pool.lane()  # every connection has grown: the least busy one (1 in flight)
            assert len(pool.conns) == 3 and fourth.conn is pool.conns[2]
            got = await asyncio.wait_for(asyncio.gather(*answers), 5.0)
            assert [a.code for a in got] == [b"EN"] * 9
        finally:
            pool.close()

    asyncio.run(scenario())
