"""Keys nobody reads during a ring change's warm-up still reach their new owners (ring/handover.py):
each previous owner pushes its moved keys over while the window is open, so once the ring settles
and the orphan sweep has deleted the copies left behind, every key is still a hit, with its flags
and remaining TTL, served by its new owner's own memcached."""

from __future__ import annotations

import pytest

from tests.ring.load import deadline_poll
from tests.ring.test_orphans import change, settle
from tests.ring.tier import Tier
from tests.support.procs import talk


def value(i: int) -> bytes:
    return b"value-%d-" % i + b"x" * (i % 50)


@pytest.mark.parametrize("l2", [False, True], ids=["l1", "l1l2"])
@pytest.mark.parametrize("grow", [True, False], ids=["grow", "shrink"])
def test_unread_keys_reach_their_new_owner_before_the_ring_settles(grow: bool, l2: bool) -> None:
    tier = Tier.start(3 if not grow else 2, spare=1 if grow else 0, warmup_seconds=600, l2=l2)
    try:
        keys = [b"handover:%d" % i for i in range(900)]
        store = b"".join(b"set %s %d %d %d\r\n%s\r\n" % (k, i, 0 if i % 3 else 5000, len(value(i)), value(i))
                         for i, k in enumerate(keys))
        talk(tier.pairs[0].addr, store + b"mn\r\n", b"MN\r\n")
        before = {k: tier.owner(k) for k in keys}
        if grow:
            tier.start_proxy(2)
            change(tier, [0, 1, 2], [0, 1], [0, 1, 2])
        else:
            change(tier, [0, 1], [0, 1, 2], [0, 1, 2])
        moved = [k for k in keys if tier.owner(k) != before[k]]
        assert len(moved) > 150
        deadline_poll(lambda: all(tier.ring_json(i)["handed_over_generation"] == tier.generation
                                  for i in (0, 1, 2)), 30)
        settle(tier, [0, 1, 2])
        for i, k in enumerate(keys):  # asked of each new owner's memcached itself: no proxy in between
            mc = tier.pairs[tier.owner(k)]
            answer = talk((mc.l2 if l2 else mc.memcached).addr, b"mg %s f t v\r\n" % k)
            head, _, data = answer.partition(b"\r\n")
            assert head.startswith(b"VA "), (k, k in moved, answer)
            fields = dict((f[:1], f[1:]) for f in head.split()[2:])
            assert data == value(i) + b"\r\n" and fields[b"f"] == b"%d" % i, (k, answer)
            ttl = int(fields[b"t"])
            assert (ttl == -1) if i % 3 else (4900 < ttl <= 5000), (k, answer)
        for k in moved:  # the copies left behind were swept
            old = tier.pairs[before[k]]
            assert talk((old.l2 if l2 else old.memcached).addr, b"mg %s\r\n" % k) == b"EN\r\n", k
    finally:
        tier.stop()
