"""A copy left on a member that no longer owns its key (an orphan) never comes back when the ring
returns the key to that member: grow 2 -> 3 (keys move to member 2, their old copies stay on 0/1),
delete or change them on member 2 once the ring has settled, shrink 3 -> 2 (the keys move back).
The settled ring's orphan sweep (ring/sweep.py) removes the copies left behind."""

from __future__ import annotations

import asyncio
import base64

from cacheproxy.backends.address import parse_address
from cacheproxy.metrics.stats import STATS
from cacheproxy.ring.sweep import sweep_one

from tests.ring.load import deadline_poll
from tests.ring.tier import Tier
from tests.support.procs import connect, free_port, start_memcached, talk


def on_all(tier: Tier, generation: int, phase: str, members: list[int]) -> bool:
    return all(tier.ring_json(i)["generation"] == generation and tier.ring_json(i)["phase"] == phase
               for i in members)


def step(tier: Tier, phase: str, previous: list[int], window: float, running: list[int]) -> None:
    tier.generation += 1
    tier.extra["warmup_seconds"] = window
    tier.write(previous=previous, phase=phase)
    deadline_poll(lambda: on_all(tier, tier.generation, phase, running), 10)


def change(tier: Tier, members: list[int], previous: list[int], running: list[int]) -> None:
    """The operator's first two steps: prepare, then serve with the warm-up window open."""
    tier.members = members
    step(tier, "prepare", previous, 600, running)
    step(tier, "serve", previous, 600, running)


def settle(tier: Tier, running: list[int]) -> None:
    """The operator's last step, once warmupSeconds have passed: previous cleared, window over
    (ended here by setting it to 0)."""
    step(tier, "serve", [], 0, running)
    assert all(tier.ring_json(i)["warmup_until"] is None for i in running)
    deadline_poll(lambda: all(tier.ring_json(i)["swept_generation"] == tier.generation for i in running), 10)
    # what the dashboard shows of the sweep
    assert all(tier.metric(i, "cacheproxy_ring_swept_generation ") == tier.generation for i in running)


def test_keys_deleted_or_changed_elsewhere_do_not_come_back_from_an_old_owner() -> None:
    tier = Tier.start(2, spare=1, warmup_seconds=600)
    try:
        keys = [b"orphan:%d" % i for i in range(400)]
        talk(tier.pairs[0].addr, b"".join(b"set %s 0 0 2\r\nv1\r\n" % k for k in keys) + b"mn\r\n", b"MN\r\n")
        tier.start_proxy(2)
        change(tier, [0, 1, 2], [0, 1], [0, 1, 2])
        moved = [k for k in keys if tier.owner(k) == 2]
        assert len(moved) > 40
        half = len(moved) // 2
        deleted, changed = moved[:half], moved[half:]
        for k in deleted:  # read first: the warm-up fills member 2, the old copy stays behind
            assert talk(tier.pairs[1].addr, b"get %s\r\n" % k, b"END\r\n").startswith(b"VALUE")
        settle(tier, [0, 1, 2])
        talk(tier.pairs[1].addr, b"".join(b"delete %s\r\n" % k for k in deleted) + b"mn\r\n", b"MN\r\n")
        talk(tier.pairs[1].addr, b"".join(b"set %s 0 0 2\r\nv2\r\n" % k for k in changed) + b"mn\r\n", b"MN\r\n")
        change(tier, [0, 1], [0, 1, 2], [0, 1, 2])
        read_in_window = changed[: len(changed) // 2]  # these are moved back by the warm-up
        for k in read_in_window:
            assert talk(tier.pairs[1].addr, b"get %s\r\n" % k, b"END\r\n") == b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % k
        settle(tier, [0, 1, 2])
        stale, lost = [], []
        for k in deleted + changed:
            got = talk(tier.pairs[0].addr, b"get %s\r\n" % k, b"END\r\n")
            if b"v1" in got or (k in deleted and got != b"END\r\n"):
                stale.append((k, got))
            elif k in read_in_window and got != b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % k:
                lost.append((k, got))
        # A changed key nobody read during the window was handed back (v2) if the hand-over reached it
        # before the window closed, else it is a miss: never the old v1.
        assert stale == [] and lost == [], f"{len(stale)} stale, {len(lost)} lost of {len(moved)}: {stale[:3]}"
    finally:
        tier.stop()


def test_sweep_deletes_what_is_not_owned_whatever_the_key_bytes() -> None:
    """Keys with spaces or binary bytes (stored through the meta protocol in base64) are listed
    url-encoded and deleted in base64; chunk items and owned keys stay."""
    mc = start_memcached()
    try:
        odd = [b"gone with space", b"gone\x01\xff", b"keep \x02"]
        payload = b"".join(b"ms %s 1 b\r\nx\r\n" % base64.b64encode(k) for k in odd)
        payload += b"".join(b"set %s 0 0 1\r\nx\r\n" % k for k in (b"gone:1", b"keep:1", b"_c:0123456789abcdef:0"))
        talk(mc.addr, payload + b"mn\r\n", b"MN\r\n")
        result = asyncio.run(sweep_one(parse_address(mc.addr), lambda key: key.startswith(b"keep"), lambda: True))
        assert result == (5, 3)  # the chunk item is not even counted
        left = {k: talk(mc.addr, b"mg %s b\r\n" % base64.b64encode(k)) for k in
                [*odd, b"gone:1", b"keep:1", b"_c:0123456789abcdef:0"]}
        assert {k for k, answer in left.items() if answer == b"HD\r\n"} == {b"keep \x02", b"keep:1",
                                                                           b"_c:0123456789abcdef:0"}
    finally:
        mc.stop()


def test_a_sweep_that_cannot_run_is_counted_and_left_for_a_retry() -> None:
    """memcached's crawler busy with another client's listing answers BUSY (counted as busy); a
    memcached that is not there fails the connection (counted as failed). Both sweeps stop, to be
    retried later, and delete nothing."""
    mc = start_memcached()
    hog = None
    try:
        keys = 200_000  # a listing of ~20 MB: far more than the hog's socket buffers hold
        for start in range(0, keys, 20_000):
            talk(mc.addr, b"".join(b"set key:%07d 0 0 1 noreply\r\nx\r\n" % i
                                   for i in range(start, start + 20_000)) + b"mn\r\n", b"MN\r\n")
        hog = connect(mc.addr)
        hog.sendall(b"lru_crawler metadump all\r\n")
        assert hog.recv(4096)  # its listing has begun; never read further, it holds the crawler
        before = dict(STATS.ring_sweep_retries)
        owned_none = lambda key: False  # noqa: E731 - would delete every key, if it ran
        assert asyncio.run(sweep_one(parse_address(mc.addr), owned_none, lambda: True)) is None
        assert STATS.ring_sweep_retries["busy"] == before.get("busy", 0) + 1
        assert talk(mc.addr, b"mg key:0000000 v\r\n") == b"VA 1\r\nx\r\n"
        nowhere = parse_address(f"127.0.0.1:{free_port()}")
        assert asyncio.run(sweep_one(nowhere, owned_none, lambda: True)) is None
        assert STATS.ring_sweep_retries["failed"] == before.get("failed", 0) + 1
    finally:
        if hog is not None:
            hog.close()
        mc.stop()
