"""A member's memcached killed, a member's proxy SIGSTOPped: only that member's keys are
affected (reads miss at once once it is marked down, writes SERVER_ERROR), never a hang, and its
keys are served again within 2 s of its return. flush_all reaches every member."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.ring.tier import Tier
from tests.support.procs import start_memcached

KEYS = [b"fault:%d" % i for i in range(300)]


class Client:
    def __init__(self, addr: str, timeout: float = 5.0) -> None:
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)

    def call(self, payload: bytes, terminators: tuple[bytes, ...]) -> bytes:
        self.sock.sendall(payload)
        buf = b""
        while not buf.endswith(terminators):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
        return buf

    def set(self, key: bytes, value: bytes) -> bytes:
        return self.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), (b"\r\n",))

    def get(self, key: bytes) -> bytes:
        return self.call(b"get %s\r\n" % key, (b"END\r\n", b"ERROR\r\n", b"unavailable\r\n",
                                                 b"down\r\n", b"timeout\r\n", b"lost\r\n"))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tier():
    t = Tier.start(3)
    yield t
    t.stop()


def fill(tier: Tier) -> dict[int, list[bytes]]:
    c = Client(tier.pairs[0].addr)
    by_owner: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for key in KEYS:
        assert c.set(key, key) == b"STORED\r\n"
        by_owner[tier.owner(key)].append(key)
    c.close()
    return by_owner


def check_others(tier: Tier, by_owner: dict[int, list[bytes]], down: int, via: int) -> None:
    c = Client(tier.pairs[via].addr)
    for owner, keys in by_owner.items():
        if owner == down:
            continue
        for key in keys:
            assert c.get(key) == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(key), key)
    c.close()


def wait_recovered(tier: Tier, keys: list[bytes], via: int, deadline_s: float) -> float:
    started = time.monotonic()
    c = Client(tier.pairs[via].addr)
    key = keys[0]
    while True:
        if c.set(key, key) == b"STORED\r\n" and c.get(key).startswith(b"VALUE"):
            c.close()
            return time.monotonic() - started
        assert time.monotonic() - started < deadline_s, "member did not come back"
        time.sleep(0.02)


def test_memcached_killed_affects_only_its_keys(tier: Tier) -> None:
    by_owner = fill(tier)
    victim = tier.pairs[2]
    port = victim.memcached.addr.rsplit(":", 1)[1]
    victim.memcached.stop(signal.SIGKILL)
    c = Client(tier.pairs[0].addr)
    answers = set()
    for key in by_owner[2][:20]:
        started = time.monotonic()
        answers.add(c.get(key))
        assert time.monotonic() - started < 3.0  # never a hang
    # Once marked down: a miss at once (owner_down: miss); writes refused at once.
    assert b"END\r\n" in answers
    assert c.set(by_owner[2][0], b"x").startswith(b"SERVER_ERROR")
    c.close()
    check_others(tier, by_owner, down=2, via=0)
    check_others(tier, by_owner, down=2, via=1)
    victim.memcached = start_memcached(port=int(port))
    took = wait_recovered(tier, by_owner[2], via=0, deadline_s=10)
    print(f"memcached back -> member's keys served again after {took:.2f}s")
    assert took < 2.5


def test_proxy_stopped_affects_only_its_keys(tier: Tier) -> None:
    by_owner = fill(tier)
    victim = tier.pairs[2].proxy
    assert victim is not None
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        c = Client(tier.pairs[0].addr)
        started = time.monotonic()
        first = c.get(by_owner[2][0])  # waits for the timeout (1 s) at most
        assert time.monotonic() - started < 3.0
        assert first.startswith(b"SERVER_ERROR") or first == b"END\r\n"
        started = time.monotonic()
        assert c.get(by_owner[2][1]) == b"END\r\n"  # marked down: a miss at once
        assert time.monotonic() - started < 0.5
        c.close()
        check_others(tier, by_owner, down=2, via=0)
        check_others(tier, by_owner, down=2, via=1)
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    took = wait_recovered(tier, by_owner[2], via=0, deadline_s=10)
    print(f"proxy continued -> member's keys served again after {took:.2f}s")
    assert took < 2.0


def test_flush_all_reaches_every_member(tier: Tier) -> None:
    by_owner = fill(tier)
    c = Client(tier.pairs[1].addr)
    assert c.call(b"flush_all\r\n", (b"\r\n",)) == b"OK\r\n"
    for keys in by_owner.values():
        for key in keys[:10]:
            assert c.get(key) == b"END\r\n"
    c.close()


def test_owner_down_error_answers_server_error() -> None:
    tier = Tier.start(3, owner_down="error")
    try:
        by_owner = fill(tier)
        tier.pairs[2].memcached.stop(signal.SIGKILL)
        c = Client(tier.pairs[0].addr)
        answers = [c.get(key) for key in by_owner[2][:10]]
        assert all(a.startswith(b"SERVER_ERROR") for a in answers), answers
        assert b"SERVER_ERROR ring member %s down\r\n" % tier.pairs[2].name.encode() in answers
        check_others(tier, by_owner, down=2, via=0)
        # flush_all is OK only when every member answered OK.
        assert c.call(b"flush_all\r\n", (b"\r\n",)).startswith(b"SERVER_ERROR")
        c.close()
    finally:
        tier.stop()


def test_peers_named_by_host_name_are_resolved() -> None:
    """Peers given as ``localhost:PORT`` (resolved with getaddrinfo on every connect, so again
    after a member comes back): forwarding works, and again after the member's proxy restarts."""
    tier = Tier.start(3, peer_host="localhost")
    try:
        by_owner = fill(tier)
        check_others(tier, by_owner, down=-1, via=1)
        tier.pairs[2].proxy.stop()
        tier.start_proxy(2)
        took = wait_recovered(tier, by_owner[2], via=0, deadline_s=10)
        print(f"member proxy restarted -> keys served again after {took:.2f}s")
    finally:
        tier.stop()
