"""A warm-up fill racing other proxies' writes, each interleaving placed exactly.

Two real memcacheds stand for a key's previous and new owner. The warm-up read runs on plain
handlers over them; another proxy's write (one still in ``prepare``: the previous owner written,
then the new owner's copy deleted; or one already serving: the new owner written, then the previous
copy deleted) is run through its own connections at a chosen step of the read, by a wrapper that
holds that step until the write is done.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from cacheproxy.backends.address import parse_address
from cacheproxy.backends.connection import BackendConnection
from cacheproxy.handlers.plain import PlainHandler
from cacheproxy.protocol.meta import code_of
from cacheproxy.ring import warmup

from tests.support.callback import Held, call
from tests.support.procs import Proc, start_memcached

KEY = b"race:1"



@pytest.fixture
def owners() -> tuple[Proc, Proc]:
    prev, new = start_memcached(), start_memcached()
    yield prev, new
    prev.stop(signal.SIGKILL)
    new.stop(signal.SIGKILL)


class Pair:
    """Handlers on the previous and new owner (the warming proxy's) and another proxy's."""

    def __init__(self, prev: Proc, new: Proc) -> None:
        self.conns = [BackendConnection(parse_address(p.addr), "l1", timeout=10.0) for p in (prev, new, prev, new)]
        self.prev, self.new, self.other_prev, self.other_new = (PlainHandler(c) for c in self.conns)

    async def preparing_set(self, value: bytes) -> None:
        """A write by a proxy in prepare: the previous owner, then the new owner's copy deleted."""
        assert code_of(await call(self.other_prev.store, b"S", KEY, 0, 0, value, 0)) == b"HD"
        await call(self.other_new.delete, KEY)

    async def serving_set(self, value: bytes) -> None:
        """A write by a proxy already serving: the new owner, then the previous copy deleted."""
        assert code_of(await call(self.other_new.store, b"S", KEY, 0, 0, value, 0)) == b"HD"
        await call(self.other_prev.delete, KEY)

    async def value_on_new(self) -> bytes | None:
        resp = await call(self.other_new.get, KEY)
        return resp.value if resp.code == b"VA" else None

    async def warm_read(self, prev: Any, new: Any) -> Any:
        return await call(warmup.warm_read, prev, new, KEY, False, lambda done: new.get(KEY, done),
                          lambda r: code_of(r) == b"EN")

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


@pytest.fixture
async def pair(owners: tuple[Proc, Proc]) -> Pair:
    p = Pair(*owners)
    yield p
    p.close()


async def test_a_write_between_the_read_and_the_fill_leaves_no_stale_copy(pair: Pair) -> None:
    """The previous copy read (v1) is overwritten (v2) before the fill lands: the new owner must
    not keep v1, which every later read would be served."""
    assert code_of(await call(pair.prev.store, b"S", KEY, 0, 0, b"v1", 0)) == b"HD"
    new = Held(pair.new, "meta", {1}, lambda: pair.preparing_set(b"v2"))  # the fill is its first meta
    resp = await pair.warm_read(pair.prev, new)
    assert resp.value in (b"v1", b"v2")  # concurrent with the write: either value
    assert await pair.value_on_new() in (None, b"v2")
    fresh = await pair.warm_read(pair.prev, pair.new)
    assert fresh.value == b"v2"


async def test_a_write_between_the_fill_and_the_read_is_not_a_miss(pair: Pair) -> None:
    """The filled copy is deleted by a preparing proxy's write before the read: the value is on
    the previous owner all along, so the read pulls again instead of answering a miss."""
    assert code_of(await call(pair.prev.store, b"S", KEY, 0, 0, b"v1", 0)) == b"HD"
    new = Held(pair.new, "get", {2}, lambda: pair.preparing_set(b"v2"))  # the read after the fill
    resp = await pair.warm_read(pair.prev, new)
    assert resp.code == b"VA" and resp.value == b"v2"


async def test_a_read_that_always_loses_the_race_ends_with_a_miss(pair: Pair) -> None:
    """A write before every read after a fill: the read gives up after PULLS fills."""
    assert code_of(await call(pair.prev.store, b"S", KEY, 0, 0, b"v1", 0)) == b"HD"
    every = set(range(2, 2 + warmup.PULLS))
    new = Held(pair.new, "get", every, lambda: pair.preparing_set(b"v2"))
    resp = await pair.warm_read(pair.prev, new)
    assert resp.code == b"EN"
    assert new.calls == 1 + warmup.PULLS


async def test_a_write_by_a_serving_proxy_between_the_two_reads_is_found(pair: Pair) -> None:
    """The new owner misses; before the previous owner is read, a proxy already serving writes the
    new owner (v2) and deletes the previous copy: the previous owner has nothing, and the read
    must look at the new owner again rather than answer the first miss."""
    assert code_of(await call(pair.prev.store, b"S", KEY, 0, 0, b"v1", 0)) == b"HD"
    prev = Held(pair.prev, "get", {1}, lambda: pair.serving_set(b"v2"))
    resp = await pair.warm_read(prev, pair.new)
    assert resp.code == b"VA" and resp.value == b"v2"


async def test_a_miss_on_both_owners_is_read_again_once(pair: Pair) -> None:
    new = Held(pair.new, "get", set(), lambda: asyncio.sleep(0))
    resp = await pair.warm_read(pair.prev, new)
    assert resp.code == b"EN" and new.calls == 2
