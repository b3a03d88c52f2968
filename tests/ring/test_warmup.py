"""Warm-up and the prepare phase, checked on the memcacheds themselves: a miss on the new owner
is filled from the previous owner with its remaining TTL; deletes and overwrites during the
window remove the previous copy, so nothing deleted or overwritten comes back. The hand-over
(ring/handover.py, tests/ring/test_handover.py) is off here: these fills are the reads' own."""

from __future__ import annotations

import pytest
from cacheproxy.ring.ketama import Continuum

from tests.ring.load import deadline_poll
from tests.ring.tier import Tier
from tests.support.procs import talk


def applied(tier: Tier, generation: int, phase: str) -> bool:
    return all(tier.ring_json(i)["generation"] == generation and tier.ring_json(i)["phase"] == phase
               for i in range(3))


def grow(tier: Tier, keys: list[bytes], payload: bytes) -> tuple[list[bytes], dict[bytes, int]]:
    """PAYLOAD stored through members 0, 1; then member 2 added (previous = [0, 1], phase serve).
    The KEYS that moved to member 2, and every key's old owner."""
    talk(tier.pairs[0].addr, payload + b"mn\r\n", b"MN\r\n")
    old_owner = {k: tier.owner(k) for k in keys}
    tier.start_proxy(2)
    tier.members = [0, 1, 2]
    tier.generation += 1
    tier.write(previous=[0, 1], phase="serve")
    deadline_poll(lambda: applied(tier, tier.generation, "serve"), 10)
    moved = [k for k in keys if tier.owner(k) == 2]
    assert len(moved) > 20
    return moved, old_owner


@pytest.fixture
def grown():
    """Members 0, 1 with 300 keys stored, then member 2 added: previous = [0, 1], phase serve."""
    tier = Tier.start(2, spare=1, warmup_seconds=600, handover=False)
    keys = [b"warm:%d" % i for i in range(300)]
    moved, old_owner = grow(tier, keys, b"".join(b"set %s 7 1000 %d\r\n%s\r\n" % (k, len(k), k) for k in keys))
    yield tier, moved, old_owner
    tier.stop()


def test_miss_on_new_owner_is_filled_with_remaining_ttl(grown) -> None:
    tier, moved, _ = grown
    new = tier.pairs[2].memcached.addr
    key = moved[0]
    assert talk(new, b"mg %s v\r\n" % key) == b"EN\r\n"
    assert talk(tier.pairs[1].addr, b"get %s\r\n" % key, b"END\r\n") == b"VALUE %s 7 %d\r\n%s\r\nEND\r\n" % (
        key, len(key), key)
    got = talk(new, b"mg %s f t v\r\n" % key, b"\r\n")
    flags, ttl = got.split()[2], int(got.split()[3][1:])
    assert flags == b"f7" and 990 <= ttl <= 1000, got
    view = tier.ring_json(0)
    assert view["warmup_until"] is not None and [m["name"] for m in view["previous"]] == [
        tier.pairs[0].name, tier.pairs[1].name]


def test_deleted_or_overwritten_keys_do_not_come_back(grown) -> None:
    tier, moved, old_owner = grown
    deleted, overwritten = moved[1:11], moved[11:21]
    for key in deleted:
        assert talk(tier.pairs[0].addr, b"delete %s\r\n" % key) == b"DELETED\r\n"  # it existed (previous owner)
    for key in overwritten:
        assert talk(tier.pairs[1].addr, b"set %s 0 0 3\r\nnew\r\n" % key) == b"STORED\r\n"
    for key in deleted + overwritten:
        previous = tier.pairs[old_owner[key]].memcached.addr
        assert talk(previous, b"mg %s v\r\n" % key) == b"EN\r\n"  # the previous copy is gone
    for via in range(3):
        for key in deleted:
            assert talk(tier.pairs[via].addr, b"get %s\r\n" % key, b"END\r\n") == b"END\r\n"
        for key in overwritten:
            want = b"VALUE %s 0 3\r\nnew\r\nEND\r\n" % key
            assert talk(tier.pairs[via].addr, b"get %s\r\n" % key, b"END\r\n") == want


def test_dependent_writes_see_the_previous_value(grown) -> None:
    tier, moved, _ = grown
    key = moved[21]
    assert talk(tier.pairs[0].addr, b"append %s 0 0 1\r\n!\r\n" % key) == b"STORED\r\n"
    assert talk(tier.pairs[2].addr, b"get %s\r\n" % key, b"END\r\n") == b"VALUE %s 7 %d\r\n%s!\r\nEND\r\n" % (
        key, len(key) + 1, key)
    assert talk(tier.pairs[1].addr, b"add %s 0 0 1\r\nx\r\n" % moved[22]) == b"NOT_STORED\r\n"


def test_prepare_writes_the_previous_owner_and_clears_the_new_one() -> None:
    """In prepare a write lands on the previous owner (reads follow it) and removes the new
    owner's copy: proxies still on the old ring write and delete there alone, so a copy on the
    new owner could only be stale."""
    tier = Tier.start(2, spare=1)
    try:
        tier.start_proxy(2)
        keys = [b"prep:%d" % i for i in range(200)]
        moving = [k for k in keys if Continuum([tier.pairs[i].name for i in range(3)]).owner(k) == 2]
        for key in moving:  # a stale copy on the member about to own the key
            assert talk(tier.pairs[2].memcached.addr, b"set %s 0 0 5\r\nstale\r\n" % key) == b"STORED\r\n"
        tier.members = [0, 1, 2]
        tier.generation += 1
        tier.write(previous=[0, 1], phase="prepare")
        deadline_poll(lambda: applied(tier, tier.generation, "prepare"), 10)
        previous_ring = Continuum([tier.pairs[i].name for i in (0, 1)])
        for key in moving:
            assert talk(tier.pairs[2].addr, b"set %s 0 0 2\r\nok\r\n" % key) == b"STORED\r\n"
            prev = tier.pairs[previous_ring.owner(key)].memcached.addr
            assert talk(prev, b"mg %s v\r\n" % key, b"ok\r\n").startswith(b"VA")
            assert talk(tier.pairs[2].memcached.addr, b"mg %s v\r\n" % key) == b"EN\r\n"
            # a delete through a proxy still on the old ring reaches the previous owner alone ...
            assert talk(prev, b"delete %s\r\n" % key) == b"DELETED\r\n"
            # ... and a preparing proxy then reads nothing, not the copy a mirror would have left
            assert talk(tier.pairs[0].addr, b"get %s\r\n" % key, b"END\r\n") == b"END\r\n"
    finally:
        tier.stop()


def test_member_change_without_previous_warms_up_from_the_old_list() -> None:
    """No previous given: the proxy itself saw the members change, the old list is the previous
    ring; warmup_seconds applies live (set to 0: the warm-up ends, moved keys now miss)."""
    tier = Tier.start(2, spare=1, warmup_seconds=600, handover=False)
    try:
        keys = [b"implicit:%d" % i for i in range(300)]
        talk(tier.pairs[0].addr, b"".join(b"set %s 0 0 1\r\nv\r\n" % k for k in keys) + b"mn\r\n", b"MN\r\n")
        tier.start_proxy(2)
        tier.members = [0, 1, 2]
        tier.generation += 1
        tier.write()
        deadline_poll(lambda: all(tier.ring_json(i)["generation"] == tier.generation for i in range(2)), 10)
        moved = [k for k in keys if tier.owner(k) == 2]
        assert talk(tier.pairs[0].addr, b"get %s\r\n" % moved[0], b"END\r\n").startswith(b"VALUE")
        assert tier.ring_json(0)["warmup_until"] is not None
        tier.extra["warmup_seconds"] = 0
        tier.generation += 1
        tier.write()
        deadline_poll(lambda: all(tier.ring_json(i)["generation"] == tier.generation for i in range(2)), 10)
        assert talk(tier.pairs[0].addr, b"get %s\r\n" % moved[1], b"END\r\n") == b"END\r\n"
    finally:
        tier.stop()


def test_once_the_window_is_over_writes_still_clear_previous_copies_while_previous_is_listed() -> None:
    """The operator ends every proxy's warm-up reads (warmup_seconds: 0, previous still listed)
    before it clears previous: reads no longer reach previous owners, writes still remove their
    copies, so a proxy still reading them cannot find one another proxy stopped removing."""
    tier = Tier.start(2, spare=1, warmup_seconds=0)
    try:
        keys = [b"closing:%d" % i for i in range(200)]
        moved, old = grow(tier, keys, b"".join(b"set %s 0 0 2\r\nv1\r\n" % k for k in keys))
        read, written = moved[: len(moved) // 2], moved[len(moved) // 2:]
        for key in read:  # no warm-up read: the window is over
            assert talk(tier.pairs[1].addr, b"get %s\r\n" % key, b"END\r\n") == b"END\r\n"
        for key in written:
            assert talk(tier.pairs[1].addr, b"set %s 0 0 2\r\nv2\r\n" % key) == b"STORED\r\n"
            assert talk(tier.pairs[old[key]].memcached.addr, b"mg %s v\r\n" % key) == b"EN\r\n"
            assert talk(tier.pairs[2].memcached.addr, b"mg %s v\r\n" % key, b"v2\r\n").startswith(b"VA")
    finally:
        tier.stop()
