"""The ring's ketama against the real libraries, live: the same 100,000 keys land on the same
members as with libmemcached's weighted ketama and with twemproxy's ketama + md5, for member
lists as a tier grows and shrinks (and, for libmemcached, with unequal weights)."""

from __future__ import annotations

import random

import pytest
from cacheproxy.ring.ketama import Continuum, key_point, member_name, points_for

from tests.ring.libs import Twemproxy, libmemcached_owners, load_libmemcached, pylibmc_owners
from tests.support.procs import start_memcached

KEYS = [b"key:%d:%08x" % (i, random.Random(i).getrandbits(32)) for i in range(100_000)]
DNS = [f"cache-{i}.cache-headless.demo.svc" for i in range(6)]
# (host, port) lists: a tier of 3, grown to 4 and 5, shrunk by removing a middle member,
# plus hosts on ports other than 11211 (hashed as host:port).
LISTS = [
    [(h, 11211) for h in DNS[:3]],
    [(h, 11211) for h in DNS[:4]],
    [(h, 11211) for h in DNS[:5]],
    [(h, 11211) for h in DNS[:5] if h != DNS[2]],
    [(h, 11211) for h in DNS[:1]],
    [("127.0.0.1", 31001 + i) for i in range(4)],
    [(f"10.0.0.{i}", 11211 if i % 2 else 11311) for i in range(1, 8)],
]

lib = load_libmemcached()


def test_key_point_is_md5_little_endian() -> None:
    # MD5("foo") = acbd18db4cc2f85c...: the first four bytes, little-endian.
    assert key_point(b"foo") == 0xDB18BDAC
    assert member_name("a", 11211) == "a" and member_name("a", 11212) == "a:11212"


def test_points_per_member() -> None:
    for n in range(1, 64):
        assert points_for(1, n, n) in (156, 160)
    assert points_for(1, 3, 3) == 160 and points_for(1, 1, 1) == 160


@pytest.mark.skipif(lib is None, reason="libmemcached (libmemcached11) is not installed")
@pytest.mark.parametrize("servers", LISTS, ids=lambda s: f"{len(s)}-members")
def test_same_owners_as_libmemcached(servers: list[tuple[str, int]]) -> None:
    assert lib is not None
    ring = Continuum([member_name(h, p) for h, p in servers])
    theirs = libmemcached_owners(lib, [(h, p, 1) for h, p in servers], KEYS)
    ours = [ring.owner(k) for k in KEYS]
    diff = sum(a != b for a, b in zip(ours, theirs, strict=True))
    assert diff == 0, f"{diff} of {len(KEYS)} keys placed differently"
    assert len(set(ours)) == len(servers)


@pytest.mark.skipif(lib is None, reason="libmemcached (libmemcached11) is not installed")
@pytest.mark.parametrize("weights", [[1, 2, 3], [5, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 3, 7, 2, 2]])
def test_weighted_like_libmemcached(weights: list[int]) -> None:
    assert lib is not None
    servers = [(f"w{i}.example", 11211, w) for i, w in enumerate(weights)]
    ring = Continuum([h for h, _, _ in servers], weights)
    theirs = libmemcached_owners(lib, servers, KEYS[:20_000])
    assert [ring.owner(k) for k in KEYS[:20_000]] == theirs


def test_same_owners_as_twemproxy() -> None:
    """Real memcacheds behind a real nutcracker pool: 3, grown to 4 and 5, one removed; twice,
    with servers named by address (host:port hashed) and with DNS names (the name hashed)."""
    backends = [start_memcached() for _ in range(5)]
    try:
        for named in (False, True):
            for members in ([0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 3, 4]):
                procs = [backends[i] for i in members]
                names = [DNS[i] for i in members] if named else [None] * len(members)
                hashed = [DNS[i] for i in members] if named else [p.addr for p in procs]
                twem = Twemproxy(procs, names)
                try:
                    theirs = twem.owners(KEYS)
                finally:
                    twem.stop()
                ring = Continuum(hashed)
                ours = [ring.owner(k) for k in KEYS]
                diff = [(k, a, b) for k, a, b in zip(KEYS, ours, theirs, strict=True) if a != b]
                assert not diff, f"{members} named={named}: {len(diff)} keys placed differently: {diff[:5]}"
    finally:
        for proc in backends:
            proc.stop()


def test_same_owners_as_pylibmc_storing_into_real_memcacheds() -> None:
    """pylibmc (libmemcached) with ketama_weighted sets the keys over real memcacheds, which are then
    asked what they hold: 3 members, grown to 4 and 5, one removed."""
    pytest.importorskip("pylibmc", reason="pylibmc needs libmemcached-dev to build")
    backends = [start_memcached() for _ in range(5)]
    try:
        for members in ([0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 3, 4]):
            procs = [backends[i] for i in members]
            theirs = pylibmc_owners(procs, KEYS)
            ring = Continuum([p.addr for p in procs])
            ours = [ring.owner(k) for k in KEYS]
            diff = [(k, a, b) for k, a, b in zip(KEYS, ours, theirs, strict=True) if a != b]
            assert not diff, f"{members}: {len(diff)} keys placed differently: {diff[:5]}"
    finally:
        for proc in backends:
            proc.stop()
