"""L1L2 without locks: another client's write placed exactly inside an operation's two steps.

Two real memcacheds (L1, L2). The operation under test runs on one L1L2 orca whose L2 handler
holds a chosen answer until another client's write, through its own orca and connections, is
done; then the operation goes on. L1 must never be left holding a copy L2 does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cacheproxy.backends.address import parse_address
from cacheproxy.backends.connection import BackendConnection
from cacheproxy.handlers.plain import PlainHandler
from cacheproxy.orcas.l1l2 import L1L2
from cacheproxy.protocol.meta import code_of
from cacheproxy.protocol.requests import ADD, SET

from tests.support.callback import Held, call
from tests.support.procs import Proc

KEY = b"l1l2race"



class Two:
    """Direct handlers on L1 and L2, and another client's orca over its own connections."""

    def __init__(self, l1: Proc, l2: Proc) -> None:
        self.conns = [BackendConnection(parse_address(p.addr), "x", timeout=10.0) for p in (l1, l2, l1, l2)]
        self.l1, self.l2, other_l1, other_l2 = (PlainHandler(c) for c in self.conns)
        self.other = L1L2(other_l1, other_l2, asyncio.get_running_loop())

    def orca(self, l2: Any) -> L1L2:
        return L1L2(self.l1, l2, asyncio.get_running_loop())

    async def value(self, handler: PlainHandler) -> bytes | None:
        resp = await call(handler.get, KEY)
        return resp.value if resp.code == b"VA" else None

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


@pytest.fixture
async def two(l1: Proc, l2: Proc) -> Two:
    t = Two(l1, l2)
    yield t
    t.close()


async def test_a_delete_between_the_l2_read_and_the_promotion_leaves_no_l1_copy(two: Two) -> None:
    assert code_of(await call(two.l2.store, SET, KEY, 0, 0, b"v1", 0)) == b"HD"  # in L2 only
    orca = two.orca(Held(two.l2, "get", {1}, lambda: call(two.other.delete, KEY), answer=True))
    resp = await call(orca.get, KEY)
    assert resp.value == b"v1"  # read before the delete: its value
    assert await two.value(two.l2) is None
    assert await two.value(two.l1) is None  # not promoted back after the delete


async def test_an_add_racing_a_set_does_not_overwrite_it_in_l1(two: Two) -> None:
    """add (L2 stores it), then another client's set runs on both levels, then the add's L1 step:
    it must not put its value over the set's in L1."""
    set_v2 = lambda: call(two.other.store, SET, KEY, 0, 0, b"v2", 0)  # noqa: E731
    orca = two.orca(Held(two.l2, "store", {1}, set_v2, answer=True))
    assert code_of(await call(orca.store, ADD, KEY, 0, 0, b"v1", 0)) == b"HD"
    assert await two.value(two.l2) == b"v2"
    assert await two.value(two.l1) in (None, b"v2")


async def test_a_meta_add_racing_a_set_does_not_overwrite_it_in_l1(two: Two) -> None:
    """The same through ``ms <key> <len> ME`` (what a ring's warm-up fill sends)."""
    set_v2 = lambda: call(two.other.store, SET, KEY, 0, 0, b"v2", 0)  # noqa: E731
    orca = two.orca(Held(two.l2, "meta", {1}, set_v2, answer=True))
    assert code_of(await call(orca.meta, b"ms %s 2 ME c" % KEY, b"v1\r\n", False)) == b"HD"
    assert await two.value(two.l2) == b"v2"
    assert await two.value(two.l1) in (None, b"v2")
