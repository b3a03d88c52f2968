"""pymemcache, a real client, end to end through the proxy to a real memcached."""

from __future__ import annotations

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError


@pytest.fixture
def client(proxy):
    host, port = proxy.addr.rsplit(":", 1)
    c = Client((host, int(port)), timeout=5, connect_timeout=5)
    yield c
    c.close()


def test_set_get_delete(client):
    assert client.set("k", b"v" * 100, expire=60) is True
    assert client.get("k") == b"v" * 100
    assert client.get_many(["k", "nope"]) == {"k": b"v" * 100}
    assert client.delete("k") is True
    assert client.get("k") is None


def test_add_replace_append_prepend(client):
    assert client.add("a", b"1", noreply=False) is True
    assert client.add("a", b"2", noreply=False) is False
    assert client.replace("a", b"3", noreply=False) is True
    assert client.replace("missing", b"3", noreply=False) is False
    assert client.append("a", b"4", noreply=False) is True
    assert client.prepend("a", b"0", noreply=False) is True
    assert client.get("a") == b"034"


def test_cas_gets(client):
    client.set("c", b"x")
    value, cas = client.gets("c")
    assert value == b"x"
    assert client.cas("c", b"y", cas, noreply=False) is True
    assert client.cas("c", b"z", cas, noreply=False) is False
    assert client.get("c") == b"y"


def test_incr_decr_touch(client):
    client.set("n", b"10")
    assert client.incr("n", 5) == 15
    assert client.decr("n", 20) == 0
    assert client.incr("missing", 1) is None
    assert client.touch("n", 100, noreply=False) is True
    assert client.touch("missing", 100, noreply=False) is False
    with pytest.raises(MemcacheClientError):
        client.set("s", b"abc")
        client.incr("s", 1)


def test_flags_roundtrip_through_serde(proxy):
    from pymemcache import serde

    host, port = proxy.addr.rsplit(":", 1)
    c = Client((host, int(port)), timeout=5, serde=serde.pickle_serde)
    c.set("f", {"a": [1, 2]})  # pickled: flags carry the type
    c.set("i", 42)
    assert c.get("f") == {"a": [1, 2]}
    assert c.get("i") == 42
    c.close()


def test_large_value_and_too_large(client):
    big = bytes(range(256)) * 4000  # 1,024,000 bytes: fits under a 1 MiB item limit
    assert client.set("big", big) is True
    assert client.get("big") == big
    with pytest.raises(MemcacheServerError, match="object too large"):
        client.set("big", b"x" * (1 << 20), noreply=False)
    assert client.get("big") is None  # memcached drops the old value on a too-large set
    assert client.set("after", b"ok") is True


def test_version_stats_flush(client):
    assert client.version().startswith(b"1.6") or client.version()
    assert "curr_connections" in {k.decode() for k in client.stats()}
    client.set("x", b"1")
    assert client.flush_all(noreply=False) is True
    assert client.get("x") is None
