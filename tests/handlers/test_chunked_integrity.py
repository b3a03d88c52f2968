"""A torn or concurrent chunked write reads as a miss, never as mixed data."""

from __future__ import annotations

import asyncio
import os

from cacheproxy.handlers.chunk_format import RESERVED_FLAGS, ChunkMeta, decode_meta
from cacheproxy.handlers.chunked import APPEND_RETRIES, ChunkedHandler
from cacheproxy.metrics.stats import STATS
from cacheproxy.protocol.requests import APPEND, SET

from tests.handlers.conftest import ITEM_SIZE, raw
from tests.support.callback import call

CHUNK = ITEM_SIZE - 1024
BIG = 4 * CHUNK + 77


async def stored_token(handler: ChunkedHandler, key: bytes) -> bytes:
    meta = decode_meta((await call(handler.meta, b"mg " + key + b" v", None, False)).value)
    assert meta is not None
    return meta.token


async def test_missing_chunk_reads_as_miss(handler, backend):
    assert (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code == b"HD"
    token = await stored_token(handler, b"k")
    assert (await raw(backend, b"md _c:%s:2\r\n" % token.hex().encode())).code == b"HD"
    before = STATS.chunk_misses
    assert (await call(handler.get, b"k")).code == b"EN"
    assert STATS.chunk_misses == before + 1
    assert (await call(handler.touch, b"k", 100)).code == b"EN"


async def test_chunk_of_another_write_reads_as_miss(handler, backend):
    assert (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code == b"HD"
    token = (await stored_token(handler, b"k")).hex().encode()
    foreign = os.urandom(8) + os.urandom(CHUNK)  # right length, another write's token
    assert (await raw(backend, b"ms _c:%s:1 %d\r\n%s\r\n" % (token, len(foreign), foreign))).code == b"HD"
    before = STATS.chunk_token_mismatches
    assert (await call(handler.get, b"k")).code == b"EN"
    assert STATS.chunk_token_mismatches == before + 1
    # A chunk with the right token but the wrong length is no better.
    short = bytes.fromhex(token.decode()) + b"x" * 10
    assert (await raw(backend, b"ms _c:%s:1 %d\r\n%s\r\n" % (token, len(short), short))).code == b"HD"
    assert (await call(handler.get, b"k")).code == b"EN"
    assert STATS.chunk_token_mismatches == before + 2


async def test_lookalike_plain_values_are_not_metadata(handler, backend):
    """Only reserved flags + magic + exact length make a metadata item; anything else is data."""
    real = (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code
    assert real == b"HD"
    blob = (await call(handler.meta, b"mg k v", None, False)).value
    for flags, value in ((RESERVED_FLAGS, blob + b"!"), (RESERVED_FLAGS, b"\x89CPXCHK" + b"\x00" * 29),
                         (RESERVED_FLAGS - 1, blob)):
        assert (await call(handler.store, SET, b"p", flags, 0, value, 0)).code == b"HD"
        got = await call(handler.get, b"p")
        assert got.line == b"VA %d f%d" % (len(value), flags) and got.value == value


async def test_concurrent_writers_never_mix(connect):
    """Two clients keep overwriting one key with same-sized values while a third reads it:
    every read returns one writer's value whole, or a miss."""
    writers = [ChunkedHandler(connect(), threshold=1000, chunk_size=1000) for _ in range(2)]
    reader = ChunkedHandler(connect(), threshold=1000, chunk_size=1000)
    values = [bytes([65 + i]) * 20_000 for i in range(2)]
    finished = asyncio.Event()

    async def write(handler: ChunkedHandler, value: bytes) -> None:
        for _ in range(40):
            assert (await call(handler.store, SET, b"k", 0, 0, value, 0)).code == b"HD"

    async def read() -> list[bytes | None]:
        seen = []
        while not finished.is_set() and len(seen) < 2000:
            got = await call(reader.get, b"k")
            assert got.code in (b"VA", b"EN")
            seen.append(got.value)
        return seen

    reading = asyncio.create_task(read())
    await asyncio.gather(*(write(h, v) for h, v in zip(writers, values, strict=True)))
    finished.set()
    seen = await reading
    assert seen, "the reader never ran"
    for value in seen:
        assert value is None or value in values
    assert any(value in values for value in seen)
    assert (await call(reader.get, b"k")).value in values


async def test_crafted_metadata_cannot_fan_out(handler, backend):
    """A client can store any flags and bytes: metadata claiming 4 GiB in 1-byte chunks is
    answered as a miss at once, not with four billion chunk requests."""
    crafted = ChunkMeta(total=(1 << 32) - 1, chunk_size=1, count=(1 << 32) - 1, flags=0, token=b"t" * 8).encode()
    head = b"ms k %d F%d\r\n" % (len(crafted), RESERVED_FLAGS)
    assert (await raw(backend, head + crafted + b"\r\n")).code == b"HD"
    assert decode_meta(crafted) is not None
    assert (await call(handler.get, b"k")).code == b"EN"
    assert (await call(handler.touch, b"k", 10)).code == b"HD"
    assert (await call(handler.delete, b"k")).code == b"HD"
    assert len(backend.pending) == 0


async def test_append_to_a_torn_value_is_not_stored(handler, backend):
    assert (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code == b"HD"
    token = await stored_token(handler, b"k")
    assert (await raw(backend, b"md _c:%s:0\r\n" % token.hex().encode())).code == b"HD"
    before = STATS.chunk_misses
    assert (await call(handler.store, APPEND, b"k", 0, 0, b"more", 0)).code == b"NS"
    assert STATS.chunk_misses == before + APPEND_RETRIES  # retried, in case a writer raced us
    assert (await call(handler.get, b"k")).code == b"EN"
