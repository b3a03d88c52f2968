"""Differential: binary requests answered by memcached itself vs. by our meta mapping.

For every opcode memcached 1.6.18 serves over binary (and its malformed-input answers) the
same byte stream goes (A) raw to a fresh memcached and (B) through BinaryParser → to_meta →
a second fresh memcached → from_meta. The answers must be byte-identical, CAS values aside.
"""

from __future__ import annotations

import signal

import pytest

from tests.binary.harness import normalise, run_script
from tests.binary.scripts import CLOSING, SCRIPTS
from tests.support.procs import start_memcached


def _pair():
    a, b = start_memcached(), start_memcached()
    yield a, b
    for proc in (a, b):  # memcached takes ~1 s to exit after serving a connection: stop both at once
        proc.popen.send_signal(signal.SIGTERM)
    a.stop()
    b.stop()


two_memcacheds = pytest.fixture(_pair)
# The closing cases only look at one connection's fate, so they share a pair (each uses a new
# connection); the scripts, whose answers depend on stored items, get a fresh pair each.
shared_memcacheds = pytest.fixture(_pair, scope="module")


def assert_same(results) -> None:
    for blob, got_a, got_b, closed_a, closed_b in results:
        assert normalise(got_b) == normalise(got_a), f"step {blob[:60]!r}"
        assert closed_b == closed_a, f"close differs after {blob[:60]!r}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@pytest.mark.parametrize("seed", [0, 1])
def test_script_matches_memcached(two_memcacheds, name: str, seed: int) -> None:
    a, b = two_memcacheds
    results = run_script(a.addr, b.addr, SCRIPTS[name], seed)
    assert len(results) == len(SCRIPTS[name]) or results[-1][3], "script ended early"
    assert_same(results)


@pytest.mark.parametrize("name", sorted(CLOSING))
def test_closing_input_matches_memcached(shared_memcacheds, name: str) -> None:
    a, b = shared_memcacheds
    results = run_script(a.addr, b.addr, CLOSING[name])
    assert_same(results)
    assert results[-1][3] and results[-1][4], "both sides must close the connection"
