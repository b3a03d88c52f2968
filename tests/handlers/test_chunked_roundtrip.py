"""Values of every size round-trip through the chunked handler against a real memcached."""

from __future__ import annotations

import os

import pytest
from cacheproxy.backends.address import parse_address
from cacheproxy.backends.pool import BackendPool
from cacheproxy.handlers.chunk_format import META_LEN, RESERVED_FLAGS
from cacheproxy.handlers.chunked import ChunkedHandler
from cacheproxy.protocol.requests import SET

from tests.handlers.conftest import ITEM_SIZE, curr_items, raw
from tests.support.callback import call

THRESHOLD = CHUNK = ITEM_SIZE - 1024  # the defaults for_item_size derives


def boundary_sizes(threshold: int, chunk: int, top: int) -> list[int]:
    sizes = {0, 1, 2, threshold - 1, threshold, threshold + 1, top - 1, top, top + 1}
    for k in (1, 2, 3, 7):
        sizes |= {k * chunk - 1, k * chunk, k * chunk + 1}
    return sorted(s for s in sizes if s >= 0)


async def roundtrip(handler: ChunkedHandler, key: bytes, value: bytes, flags: int = 0) -> None:
    stored = await call(handler.store, SET, key, flags, 0, value, 0)
    assert stored.code == b"HD", stored
    got = await call(handler.get, key)
    assert got.code == b"VA", got
    assert got.line == b"VA %d f%d" % (len(value), flags)
    assert got.value == value


@pytest.mark.parametrize("size", boundary_sizes(THRESHOLD, CHUNK, 5 << 20))
async def test_roundtrip_at_every_boundary(handler, backend, size):
    value = os.urandom(size)
    await roundtrip(handler, b"k", value, flags=size % 65536)
    direct = await raw(backend, b"mg k s f\r\n")
    if size <= THRESHOLD:
        # Exactly what PlainHandler stores: one plain item anyone can read.
        assert direct.line == b"HD s%d f%d" % (size, size % 65536)
        assert await curr_items(backend) == 1
    else:
        assert direct.line == b"HD s%d f%d" % (META_LEN, RESERVED_FLAGS)
        assert await curr_items(backend) == 1 + -(-size // CHUNK)


@pytest.mark.parametrize("size", [1000, 1001, 2999, 3000, 3001, 5 * (1 << 20) + 17])
async def test_small_chunks_many_pieces(backend, size):
    """A 5 MiB value in 1000-byte chunks: over 5,000 chunk items in one pipelined burst."""
    handler = ChunkedHandler(backend, threshold=1000, chunk_size=1000)
    await roundtrip(handler, b"many", os.urandom(size), flags=7)


async def test_long_client_key_still_chunks(handler):
    """Chunk keys come from the token, so a 250-byte client key leaves them short."""
    await roundtrip(handler, b"x" * 250, os.urandom(3 * CHUNK + 5))


async def test_overwrite_drops_the_old_chunks(handler, backend):
    await roundtrip(handler, b"k", os.urandom(4 * CHUNK))
    await roundtrip(handler, b"k", os.urandom(2 * CHUNK + 1))
    assert await curr_items(backend) == 1 + 3
    await roundtrip(handler, b"k", b"small")
    # A plain overwrite does not read the old value: its chunks stay until evicted or expired.
    assert await curr_items(backend) == 1 + 3


async def test_value_above_max_value_size_is_refused(backend):
    handler = ChunkedHandler(backend, threshold=100, chunk_size=100, max_value_size=1000)
    resp = await call(handler.store, SET, b"k", 0, 0, b"x" * 1001, 0)
    assert resp.raw == b"SERVER_ERROR object too large for cache\r\n"
    await roundtrip(handler, b"k", b"y" * 1000)


async def test_through_a_pool_lane(small_memcached):
    pool = BackendPool(parse_address(small_memcached.addr), "l1", size=2)
    try:
        handler = ChunkedHandler.for_item_size(pool.lane(), ITEM_SIZE)
        await roundtrip(handler, b"pooled", os.urandom(5 * CHUNK + 3), flags=9)
    finally:
        pool.close()
