"""A member replaced the way a rolling update replaces its pod: its proxy drains on SIGTERM and
exits, its memcached stops, and a new memcached and proxy start on the same addresses a moment
later (empty, as a new pod's). Clients of the other members see no error and no stale read:
requests that must reach the member wait for it (``ring.down_wait``) and are sent once it is back;
reads of its keys miss meanwhile. A member that does not come back within the wait fails those
requests as before, and later ones at once.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from cacheproxy.config.ring import Member
from cacheproxy.ring.peers import Peer

from tests.ring.load import Load
from tests.ring.tier import Tier
from tests.support.procs import free_port, start_memcached

AWAY_SECONDS = 1.5  # how long the member is gone: a pod's replacement, shortened


def call(addr: str, payload: bytes, timeout: float = 10.0) -> bytes:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def owned_by(tier: Tier, member: int, prefix: str, count: int) -> list[bytes]:
    keys = (b"%s:%d" % (prefix.encode(), i) for i in range(10_000))
    return [key for key in keys if tier.owner(key) == member][:count]


async def requests_grow(load: Load, by: int, timeout: float = 30.0) -> None:
    target = load.results.requests + by
    deadline = time.monotonic() + timeout
    while load.results.requests < target:
        assert time.monotonic() < deadline, f"the load made {load.results.requests} of {target} requests"
        await asyncio.sleep(0.05)


def replace_member(tier: Tier, i: int) -> None:
    """Stop member I as the kubelet stops a pod (the proxy drains and exits, then memcached), keep
    it away for AWAY_SECONDS, then start it again, empty, on the same addresses."""
    pair = tier.pairs[i]
    assert pair.proxy is not None
    pair.proxy.stop()
    port = int(pair.memcached.addr.rsplit(":", 1)[1])
    pair.memcached.stop()
    time.sleep(AWAY_SECONDS)  # the scenario: the member is gone for this long
    pair.memcached = start_memcached(port=port)
    tier.start_proxy(i)


@pytest.fixture
def tier():
    t = Tier.start(3)
    yield t
    t.stop()


def test_a_member_replaced_under_load_fails_no_request(tier: Tier) -> None:
    load = Load([tier.pairs[0].addr, tier.pairs[1].addr], clients=60, keys_per_client=4)
    key, counter = owned_by(tier, 2, "restart", 2)
    answers: dict[str, bytes] = {}

    async def scenario() -> None:
        running = asyncio.create_task(load.run())
        await requests_grow(load, 2000)
        replacing = asyncio.create_task(asyncio.to_thread(replace_member, tier, 2))
        # While it is away: a set and an increment of its keys, through another member, wait for it.
        while tier.pairs[2].proxy.popen.poll() is None:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        answers["set"] = await asyncio.to_thread(call, tier.pairs[0].addr, b"set %s 0 0 1\r\nx\r\n" % key)
        answers["incr"] = await asyncio.to_thread(call, tier.pairs[0].addr, b"incr %s 1\r\n" % counter)
        answers["waited"] = b"%.2f" % (time.monotonic() - started)
        await replacing
        await requests_grow(load, 2000)
        load.stop.set()
        await running

    asyncio.run(scenario())
    r = load.results
    print(f"member replaced under load: {r.requests} requests, {r.errors} errors, {r.stale} stale, "
          f"{r.dropped} dropped; a set for it waited {answers['waited'].decode()}s")
    assert (r.errors, r.stale, r.dropped) == (0, 0, 0), r.examples
    assert answers["set"] == b"STORED\r\n"
    assert answers["incr"] == b"NOT_FOUND\r\n"  # sent to the new, empty memcached: not an error
    assert float(answers["waited"]) >= AWAY_SECONDS * 0.5  # it did wait for the member
    assert call(tier.pairs[1].addr, b"get %s\r\n" % key) == b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key
    assert tier.metric(0, 'cacheproxy_ring_waits_total{event="resumed"}') > 0
    assert tier.metric(0, 'cacheproxy_ring_waits_total{event="expired"}') == 0


def test_a_member_that_does_not_come_back_fails_its_writes_after_the_wait() -> None:
    tier = Tier.start(3, down_wait=0.5)
    try:
        keys = owned_by(tier, 2, "gone", 3)
        assert call(tier.pairs[0].addr, b"set %s 0 0 1\r\nx\r\n" % keys[0]) == b"STORED\r\n"
        tier.pairs[2].proxy.stop()
        down = b"SERVER_ERROR ring member %s down\r\n" % tier.pairs[2].name.encode()
        started = time.monotonic()
        assert call(tier.pairs[0].addr, b"set %s 0 0 1\r\ny\r\n" % keys[1]) == down
        waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0, waited
        # The wait is over: the next write fails at once; a read misses at once (owner_down: miss).
        started = time.monotonic()
        assert call(tier.pairs[0].addr, b"delete %s\r\n" % keys[2]) == down
        assert call(tier.pairs[1].addr, b"get %s\r\n" % keys[0]) == b"END\r\n"
        assert time.monotonic() - started < 0.4
        assert tier.metric(0, 'cacheproxy_ring_waits_total{event="expired"}') >= 1
    finally:
        tier.stop()


def test_down_wait_zero_answers_at_once() -> None:
    tier = Tier.start(2, down_wait=0)
    try:
        key = owned_by(tier, 1, "nowait", 1)[0]
        tier.pairs[1].proxy.stop()
        started = time.monotonic()
        answers = {call(tier.pairs[0].addr, b"set %s 0 0 1\r\nx\r\n" % key) for _ in range(5)}
        assert time.monotonic() - started < 2.0
        assert all(a.startswith(b"SERVER_ERROR") for a in answers), answers
    finally:
        tier.stop()


def test_a_member_that_flaps_gets_one_wait_not_one_per_flap() -> None:
    """Down again right after it came back (its probe answered, its requests did not): the wait
    that began with the first failure goes on, and once it has ended nothing waits any more."""
    async def scenario() -> None:
        peer = Peer(Member("flapper", f"127.0.0.1:{free_port()}"), timeout=1.0, connections=1, down_after=3,
                    probe_interval=0.05, down_wait=0.3)
        try:
            peer.mark_down("unavailable")
            began = peer.down_since
            peer.mark_up()
            peer.mark_down("unavailable")
            assert peer.down_since == began and peer.may_wait()
            outcome: list[bool] = []
            peer.park(outcome.append)
            deadline = time.monotonic() + 2.0
            while not outcome:
                assert time.monotonic() < deadline, "the wait never ended"
                await asyncio.sleep(0.01)
            assert outcome == [False] and time.monotonic() - began < 1.0
            assert not peer.may_wait()
            peer.mark_up()
            peer.mark_down("unavailable")
            assert not peer.may_wait()  # the same outage: its wait is over
        finally:
            peer.retire()

    asyncio.run(scenario())
