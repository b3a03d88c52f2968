"""End to end: pymemcache through the proxy (chunking on) to a memcached with a 64 KiB -I."""

from __future__ import annotations

import os
import urllib.request
from urllib.parse import unquote

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from tests.handlers.conftest import ITEM_SIZE
from tests.support.procs import Proc, connect, recv_until, start_proxy

BIG = 5 * (1 << 20) + 3


@pytest.fixture
def chunking_proxy(small_memcached: Proc, tmp_path) -> Proc:
    config = tmp_path / "config.yaml"
    config.write_text("chunking:\n  enabled: true\n  max_value_size: 8388608\n")
    proc = start_proxy(small_memcached.addr, args=["--max-item-size", str(ITEM_SIZE), "--config", str(config)])
    yield proc
    proc.stop()


@pytest.fixture
def client(chunking_proxy: Proc) -> Client:
    host, port = chunking_proxy.addr.rsplit(":", 1)
    c = Client((host, int(port)), timeout=10, connect_timeout=5)
    yield c
    c.close()


def test_large_values_through_the_proxy(client, chunking_proxy):
    big, small = os.urandom(BIG), b"plain"
    assert client.set("big", big, noreply=False) is True
    assert client.set("small", small, noreply=False) is True
    assert client.get("big") == big
    assert client.get_many(["big", "small", "nope"]) == {"big": big, "small": small}
    value, cas = client.gets("big")
    assert value == big
    assert client.cas("big", big[::-1], cas, noreply=False) is True
    assert client.cas("big", big, cas, noreply=False) is False
    assert client.add("big", b"x", noreply=False) is False
    assert client.append("big", b"tail", noreply=False) is True
    assert client.prepend("small", os.urandom(ITEM_SIZE), noreply=False) is True  # becomes chunked
    assert client.get("big") == big[::-1] + b"tail"
    assert client.touch("big", 100, noreply=False) is True
    sock = connect(chunking_proxy.addr)
    try:
        sock.sendall(b"gat 200 big\r\n")
        answer = recv_until(sock, b"END\r\n")
    finally:
        sock.close()
    assert answer == b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (BIG + 4, big[::-1] + b"tail")
    with pytest.raises(MemcacheClientError):
        client.incr("big", 1)
    assert client.delete("big", noreply=False) is True
    assert client.get("big") is None


def test_beyond_max_value_size_is_refused(client):
    from pymemcache.exceptions import MemcacheServerError

    with pytest.raises(MemcacheServerError, match="object too large"):
        client.set("huge", b"x" * (8 << 20), noreply=False)
    assert client.set("after", b"ok", noreply=False) is True  # the connection is still in sync
    assert client.get("after") == b"ok"


def test_chunk_counters_are_exported(client, chunking_proxy, small_memcached):
    assert client.set("k", os.urandom(3 * ITEM_SIZE), noreply=False) is True
    direct_host, direct_port = small_memcached.addr.rsplit(":", 1)
    direct = Client((direct_host, int(direct_port)), timeout=5)
    try:
        # Find a chunk key through memcached's own key dump and delete it behind the proxy's back.
        dump = direct.raw_command(b"lru_crawler metadump all", b"END").decode().splitlines()
        keys = [unquote(line.split()[0][4:]) for line in dump if line.startswith("key=_c%3A")]
        assert keys and direct.delete(keys[0], noreply=False)
    finally:
        direct.close()
    assert client.get("k") is None
    metrics = urllib.request.urlopen(f"http://{chunking_proxy.extra['admin']}/metrics", timeout=5).read().decode()
    assert "cacheproxy_chunk_misses_total 1.0" in metrics
