"""memcached's command semantics hold for chunked values: add/replace/cas, touch/gat, delete,
append/prepend, incr/decr, and a client's pipelined requests keep their order."""

from __future__ import annotations

import asyncio
import os

from cacheproxy.handlers.chunked import ChunkedHandler
from cacheproxy.protocol.requests import ADD, APPEND, CAS, PREPEND, REPLACE, SET

from tests.handlers.conftest import ITEM_SIZE, curr_items, raw
from tests.support.callback import call

BIG = ITEM_SIZE * 3 + 123  # four chunks with the default chunk size
CHUNKS = -(-BIG // (ITEM_SIZE - 1024))


async def test_flags_and_cas_are_preserved(handler):
    value = os.urandom(BIG)
    assert (await call(handler.store, SET, b"k", 0xDEADBEEF, 0, value, 0)).code == b"HD"
    got = await call(handler.get, b"k", cas=True)
    tokens = got.line.split(b" ")
    assert tokens[:3] == [b"VA", b"%d" % BIG, b"f%d" % 0xDEADBEEF] and tokens[3][:1] == b"c"
    cas = int(tokens[3][1:])
    assert got.value == value
    # The CAS of a chunked value is its metadata item's CAS: gets/cas work.
    assert (await call(handler.store, CAS, b"k", 1, 0, value[::-1], cas + 1)).code == b"EX"
    assert (await call(handler.store, CAS, b"k", 1, 0, value[::-1], cas)).code == b"HD"
    assert (await call(handler.store, CAS, b"k", 1, 0, value, cas)).code == b"EX"
    got = await call(handler.get, b"k", cas=True)
    assert got.value == value[::-1] and got.line.split(b" ")[2] == b"f1"
    assert (await call(handler.store, CAS, b"missing", 1, 0, value, cas)).code == b"NF"


async def test_add_and_replace(handler, backend):
    value = os.urandom(BIG)
    assert (await call(handler.store, REPLACE, b"k", 0, 0, value, 0)).code == b"NS"
    assert (await call(handler.store, ADD, b"k", 0, 0, value, 0)).code == b"HD"
    assert (await call(handler.store, ADD, b"k", 0, 0, os.urandom(BIG), 0)).code == b"NS"
    assert (await call(handler.store, ADD, b"k", 0, 0, b"small", 0)).code == b"NS"
    assert (await call(handler.get, b"k")).value == value
    # Failed writes leave no chunks behind: one metadata item plus the first value's chunks.
    assert await curr_items(backend) == 1 + CHUNKS
    other = os.urandom(2 * BIG)
    assert (await call(handler.store, REPLACE, b"k", 3, 0, other, 0)).code == b"HD"
    got = await call(handler.get, b"k")
    assert got.value == other and got.line == b"VA %d f3" % len(other)
    assert await curr_items(backend) == 1 + -(-len(other) // (ITEM_SIZE - 1024))


async def test_touch_and_gat_reach_every_chunk(handler, backend):
    value = os.urandom(BIG)
    assert (await call(handler.store, SET, b"k", 0, 0, value, 0)).code == b"HD"
    assert (await call(handler.touch, b"k", 1000)).code == b"HD"
    meta = await call(handler.meta, b"mg k v t", None, False)  # passthrough shows the metadata item
    token = meta.value[-8:].hex().encode()
    ttls = [(await raw(backend, b"mg _c:%s:%d t\r\n" % (token, i))).line for i in range(CHUNKS)]
    assert meta.line.endswith(b" t1000") and ttls == [b"HD t1000"] * CHUNKS
    got = await call(handler.get, b"k", exptime=2000, ttl=True)
    assert got.value == value
    ttls = [(await raw(backend, b"mg _c:%s:%d t\r\n" % (token, i))).line for i in range(CHUNKS)]
    assert ttls == [b"HD t2000"] * CHUNKS
    assert (await raw(backend, b"mg k t\r\n")).line == b"HD t2000"
    assert (await call(handler.touch, b"missing", 10)).code == b"EN"
    assert (await call(handler.touch, b"k", -1)).code == b"HD"  # expire now
    assert (await call(handler.get, b"k")).code == b"EN"


async def test_touch_plain_value(handler, backend):
    assert (await call(handler.store, SET, b"p", 0, 0, b"v", 0)).code == b"HD"
    assert (await call(handler.touch, b"p", 500)).code == b"HD"
    assert (await raw(backend, b"mg p t\r\n")).line == b"HD t500"


async def test_delete_removes_metadata_and_chunks(handler, backend):
    assert (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code == b"HD"
    assert (await call(handler.store, SET, b"p", 0, 0, b"plain", 0)).code == b"HD"
    assert await curr_items(backend) == 2 + CHUNKS
    assert (await call(handler.delete, b"k")).code == b"HD"
    assert (await call(handler.get, b"k")).code == b"EN"
    assert (await call(handler.delete, b"k")).code == b"NF"
    assert (await call(handler.delete, b"p")).code == b"HD"
    assert await curr_items(backend) == 0


async def test_append_prepend_across_the_threshold(handler):
    threshold = handler.threshold
    head, tail = os.urandom(threshold - 10), os.urandom(30)
    assert (await call(handler.store, SET, b"k", 42, 0, head, 0)).code == b"HD"
    assert (await call(handler.store, APPEND, b"k", 0, 0, b"0123456789", 0)).code == b"HD"  # stays plain
    assert (await call(handler.get, b"k")).value == head + b"0123456789"
    assert (await call(handler.store, APPEND, b"k", 0, 0, tail, 0)).code == b"HD"  # becomes chunked
    assert (await call(handler.store, PREPEND, b"k", 0, 0, tail, 0)).code == b"HD"  # chunked → chunked
    big_tail = os.urandom(2 * threshold)
    assert (await call(handler.store, APPEND, b"k", 0, 0, big_tail, 0)).code == b"HD"
    got = await call(handler.get, b"k")
    assert got.value == tail + head + b"0123456789" + tail + big_tail
    assert got.line.split(b" ")[2] == b"f42"  # append keeps the original flags
    assert (await call(handler.store, APPEND, b"missing", 0, 0, b"x", 0)).code == b"NS"
    assert (await call(handler.store, PREPEND, b"missing", 0, 0, big_tail, 0)).code == b"NS"


async def test_append_keeps_the_ttl_and_drops_old_chunks(handler, backend):
    assert (await call(handler.store, SET, b"k", 0, 900, os.urandom(BIG), 0)).code == b"HD"
    assert (await call(handler.store, APPEND, b"k", 0, 0, b"abc", 0)).code == b"HD"
    ttl = (await raw(backend, b"mg k t\r\n")).line
    assert ttl in (b"HD t900", b"HD t899")
    assert await curr_items(backend) == 1 + CHUNKS


async def test_append_beyond_max_value_size_is_not_stored(backend):
    handler = ChunkedHandler(backend, threshold=100, chunk_size=100, max_value_size=500)
    assert (await call(handler.store, SET, b"k", 0, 0, b"x" * 400, 0)).code == b"HD"
    assert (await call(handler.store, APPEND, b"k", 0, 0, b"y" * 101, 0)).code == b"NS"
    assert (await call(handler.store, APPEND, b"k", 0, 0, b"y" * 100, 0)).code == b"HD"
    assert (await call(handler.get, b"k")).value == b"x" * 400 + b"y" * 100


async def test_concurrent_appends_lose_nothing(connect):
    """Appends from several clients to one chunked value are CAS-guarded read-modify-writes:
    every append answered STORED is in the final value exactly once."""
    handlers = [ChunkedHandler(connect(), threshold=200, chunk_size=100) for _ in range(3)]
    assert (await call(handlers[0].store, SET, b"k", 0, 0, b"." * 300, 0)).code == b"HD"

    async def appender(index: int, handler: ChunkedHandler) -> list[bytes]:
        stored = []
        for n in range(15):
            piece = b"<%d:%02d>" % (index, n)
            if (await call(handler.store, APPEND, b"k", 0, 0, piece, 0)).code == b"HD":
                stored.append(piece)
        return stored

    results = await asyncio.gather(*(appender(i, h) for i, h in enumerate(handlers)))
    final = (await call(handlers[0].get, b"k")).value
    assert final.startswith(b"." * 300)
    stored = [piece for pieces in results for piece in pieces]
    # An append gives up (NOT_STORED) only after 5 CAS conflicts, each caused by another
    # client's success inside that attempt; with 3 x 15 appends that forces at least 29 successes.
    assert len(stored) >= 29
    for piece in stored:
        assert final.count(piece) == 1
    assert len(final) == 300 + sum(len(p) for p in stored)


async def test_incr_on_a_chunked_value_is_non_numeric(handler):
    assert (await call(handler.store, SET, b"k", 0, 0, os.urandom(BIG), 0)).code == b"HD"
    resp = await call(handler.arith, b"k", 1, True)
    assert resp.raw == b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    assert (await call(handler.store, SET, b"n", 0, 0, b"41", 0)).code == b"HD"
    assert (await call(handler.arith, b"n", 1, True)).value == b"42"


async def test_pipelined_requests_keep_the_clients_order(handler):
    """set <big>, get, delete, get, set <small>, get sent back to back without waiting."""
    value = os.urandom(BIG)
    answers: list = [None] * 7
    done = asyncio.get_running_loop().create_future()

    def answer(index: int):
        def got(resp) -> None:
            answers[index] = resp
            if None not in answers:
                done.set_result(None)

        return got

    handler.store(SET, b"k", 0, 0, value, 0, answer(0))
    handler.get(b"k", answer(1))
    handler.delete(b"k", answer(2))
    handler.get(b"k", answer(3))
    handler.store(APPEND, b"k", 0, 0, b"x", 0, answer(4))
    handler.store(SET, b"k", 0, 0, b"small", 0, answer(5))
    handler.get(b"k", answer(6))
    await asyncio.wait_for(done, 30)
    assert [a.code for a in answers] == [b"HD", b"VA", b"HD", b"EN", b"NS", b"HD", b"VA"]
    assert answers[1].value == value and answers[6].value == b"small"


async def test_close_answers_requests_queued_behind_a_chunked_write(handler):
    answers: list = []
    stored = asyncio.get_running_loop().create_future()
    handler.store(SET, b"k", 0, 0, os.urandom(BIG), 0, stored.set_result)
    handler.get(b"k", answers.append)
    handler.delete(b"k", answers.append)
    assert answers == []  # the get and delete wait for the chunked set
    handler.close()  # not owned: the connection stays up, the queue is answered at once
    assert [a.reason for a in answers] == ["client connection closed"] * 2
    assert (await asyncio.wait_for(stored, 30)).code == b"HD"  # the set in flight still completes
    assert len(answers) == 2
