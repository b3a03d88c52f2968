"""The binary protocol in the layout matrix: memcached's binary answers (through its own binary
code) against the proxy's in every layout, with the items in L1, only in L2, or nowhere.

The scripts are tests/binary's corpus (every opcode and outcome) plus the ones below, which act on
the seeded items (``k`` = ``hello``, flags 5, TTL 100; ``n`` = ``10``) and read them back, with
the CAS a get returned sent back in a CAS store, delete and increment. Answers are compared frame
by frame (tests/binary/harness.py: CAS values compared as zero/non-zero; a wrong CAS shows up as
the next step's status). GETE, Rend's extension, is not memcached's: tests/binary covers it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cacheproxy.protocol.binary import Op

from tests.binary.harness import normalise, run_script
from tests.binary.scripts import SCRIPTS, arith, get, simple, store, touch
from tests.differential.layouts import LAYOUTS, STATES, LayoutTarget, start_direct, start_layout
from tests.differential.matrix import ITEMS


def observe(opaque: int) -> list[bytes]:
    return [get(Op.GETK, b"k", opaque), get(Op.GETK, b"n", opaque + 1), get(Op.GET, b"k", opaque + 2)]


SEEDED: dict[str, list] = {
    "get_each_kind": [get(op, b"k", i) for i, op in enumerate(
        (Op.GET, Op.GETQ, Op.GETK, Op.GETKQ, Op.GET), 1)] + observe(20),
    "cas_from_get": [get(Op.GET, b"k", 1), lambda cas: store(Op.SET, b"k", b"new", 1, 100, cas=cas, opaque=2),
                     lambda cas: store(Op.SET, b"k", b"again", 1, 100, cas=cas - 1, opaque=3), *observe(20)],
    "cas_delete": [get(Op.GET, b"k", 1), lambda cas: simple(Op.DELETE, b"k", opaque=2, cas=cas + 1),
                   lambda cas: simple(Op.DELETE, b"k", opaque=3, cas=cas), *observe(20)],
    "cas_incr": [get(Op.GET, b"n", 1), lambda cas: arith(Op.INCREMENT, b"n", 5, cas=cas, opaque=2),
                 lambda cas: arith(Op.INCREMENT, b"n", 5, cas=cas + 7, opaque=3), *observe(20)],
    "stores": [store(Op.ADD, b"k", b"a", opaque=1), store(Op.REPLACE, b"k", b"r", 2, 100, opaque=2),
               store(Op.APPEND, b"k", b"+", opaque=3), store(Op.PREPEND, b"k", b"-", opaque=4),
               store(Op.SETQ, b"k", b"q", 3, 100, opaque=5), store(Op.ADDQ, b"n", b"x", opaque=6), *observe(20)],
    "touch_gat": [touch(Op.TOUCH, b"k", 300, 1), touch(Op.GAT, b"n", 300, 2), touch(Op.GATK, b"k", 300, 3),
                  touch(Op.GATQ, b"zz", 300, 4), touch(Op.GATKQ, b"k", 300, 5), touch(Op.GAT, b"k", 0xFFFFFFFF, 6),
                  *observe(20)],
    "arith": [arith(Op.INCREMENT, b"n", 5, opaque=1), arith(Op.DECREMENT, b"n", 20, opaque=2),
              arith(Op.INCREMENT, b"k", 1, opaque=3), arith(Op.INCREMENT, b"zz", 1, 7, 100, opaque=4),
              arith(Op.INCREMENTQ, b"n", 1, opaque=5), *observe(20)],
    "delete": [simple(Op.DELETE, b"k", opaque=1), simple(Op.DELETEQ, b"k", opaque=2),
               simple(Op.DELETE, b"n", opaque=3), *observe(20)],
}
# the corpus scripts that depend on nothing but the protocol: stats (also asked in unknown_opcodes)
# depend on a server's history, and the proxy's are L1's (docs/memcached-behaviour.md)
CORPUS = {name: steps for name, steps in SCRIPTS.items() if "stat" not in name and name != "unknown_opcodes"}
ALL = {**{f"seeded_{k}": v for k, v in SEEDED.items()}, **CORPUS}


@pytest.fixture(scope="module")
def direct() -> Iterator[LayoutTarget]:
    target = start_direct()
    yield target
    target.stop()


@pytest.fixture(scope="module")
def layouts() -> Iterator[dict[str, LayoutTarget]]:
    started: dict[str, LayoutTarget] = {}
    yield started
    for target in started.values():
        target.stop()


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(ALL))
def test_binary_layout_answers_like_memcached(name: str, layout: str, state: str, direct: LayoutTarget,
                                              layouts: dict[str, LayoutTarget]) -> None:
    proxy = layouts.get(layout)
    if proxy is None or not proxy.alive():
        if proxy is not None:
            proxy.stop()
        proxy = layouts[layout] = start_layout(layout)
    for target in (direct, proxy):
        target.reset()
        target.seed(ITEMS, state)
    for blob, got_a, got_b, closed_a, closed_b in run_script(direct.addr, proxy.addr, ALL[name], b_direct=True):
        assert normalise(got_b) == normalise(got_a), f"step {blob[:60]!r}"
        assert closed_b == closed_a, f"close differs after {blob[:60]!r}"
    assert proxy.alive(), "the proxy died"
