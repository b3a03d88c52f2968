"""python-binary-memcached (binary protocol): typical usage, and ``set_multi`` of 32,767 keys
with the library's default timeout (it pipelines SetQ frames and one Noop)."""

from __future__ import annotations

import bmemcached

from tests.clients.conftest import CasNames, Pair

FLOOD = 32767


def scenario(addr: str) -> list:
    client = bmemcached.Client([addr])
    cas = CasNames()
    seen: list = []
    try:
        seen.append(client.set("a", "1", time=100))
        seen.append(client.get("a"))
        seen.append(client.set("bytes", b"\x00\xff", time=100))
        seen.append(client.get("bytes"))
        seen.append(sorted(client.set_multi({"b": "2", "c": "3"}, time=100)))
        seen.append(sorted(client.get_multi(["a", "b", "c", "nope"]).items()))
        seen.append(client.add("a", "x"))
        seen.append(client.add("e", "5"))
        seen.append(client.replace("nope", "x"))
        seen.append(client.replace("e", "6"))
        value, token = client.gets("a")
        seen.append((value, cas(token)))
        seen.append(client.cas("a", "cas1", token))
        seen.append(client.cas("a", "cas2", token))
        seen.append(client.get("a"))
        seen.append(client.set("n", 10))
        seen.append(client.incr("n", 5))
        seen.append(client.decr("n", 20))
        seen.append(client.get("n"))
        seen.append(client.delete("b"))
        seen.append(client.delete("b"))
        seen.append(client.get("b"))
        seen.append(client.delete_multi(["c", "e"]))
        seen.append(sorted(client.get_multi(["a", "c", "e", "n"]).items()))
        seen.append(client.touch("a", 300) if hasattr(client, "touch") else None)
    finally:
        client.disconnect_all()
    return seen


def flood(addr: str) -> tuple[list, int]:
    """set_multi of FLOOD keys with the default timeout, then how many a get_multi finds."""
    client = bmemcached.Client([addr])
    try:
        failed = client.set_multi({f"flood:{i}": f"v{i}" for i in range(FLOOD)})
        found = client.get_multi([f"flood:{i}" for i in range(0, FLOOD, 97)])
        return sorted(failed), len(found)
    finally:
        client.disconnect_all()


def test_bmemcached_same_through_proxy(pair: Pair) -> None:
    assert scenario(pair.proxy) == scenario(pair.direct)


def test_bmemcached_set_multi_flood(pair: Pair) -> None:
    direct = flood(pair.direct)
    assert direct == ([], len(range(0, FLOOD, 97)))
    assert flood(pair.proxy) == direct
