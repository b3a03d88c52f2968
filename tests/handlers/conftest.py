"""Fixtures for the chunked handler tests: a real memcached with a small item size limit (so a
5 MiB value spans many chunks quickly) and helpers that drive a handler from asyncio."""

from __future__ import annotations

import asyncio
import signal

import pytest
from cacheproxy.backends.address import parse_address
from cacheproxy.backends.connection import BackendConnection
from cacheproxy.handlers.chunked import ChunkedHandler
from cacheproxy.protocol.meta import LINES, META

from tests.support.procs import Proc, start_memcached

ITEM_SIZE = 64 * 1024
# memcached refuses -I below its default slab_chunk_max (512 KiB) unless that shrinks too.
MEMCACHED_ARGS = ("-I", "64k", "-o", f"slab_chunk_max={ITEM_SIZE // 2}")


@pytest.fixture
def small_memcached() -> Proc:
    proc = start_memcached(args=MEMCACHED_ARGS, memory_mb=256)
    yield proc
    proc.stop(signal.SIGKILL)  # its data is throwaway; SIGTERM costs a second of graceful shutdown


@pytest.fixture
async def backend(small_memcached: Proc) -> BackendConnection:
    conn = BackendConnection(parse_address(small_memcached.addr), "l1", timeout=10.0)
    yield conn
    conn.close()


@pytest.fixture
async def connect(small_memcached: Proc):
    """Open more backend connections to the same memcached (closed afterwards)."""
    conns: list[BackendConnection] = []

    def make() -> BackendConnection:
        conn = BackendConnection(parse_address(small_memcached.addr), "l1", timeout=10.0)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        conn.close()


@pytest.fixture
async def handler(backend: BackendConnection) -> ChunkedHandler:
    return ChunkedHandler.for_item_size(backend, ITEM_SIZE)


async def raw(conn: BackendConnection, command: bytes, shape: int = META):
    """One raw command straight to memcached, bypassing the handler (to inspect or tamper)."""
    future = asyncio.get_running_loop().create_future()
    conn.send(command, shape, lambda resp: future.done() or future.set_result(resp))
    return await asyncio.wait_for(future, 30)


async def curr_items(conn: BackendConnection) -> int:
    resp = await raw(conn, b"stats\r\n", LINES)
    for line in resp.raw.decode().splitlines():
        if line.startswith("STAT curr_items "):
            return int(line.split()[2])
    raise AssertionError("no curr_items in stats")
