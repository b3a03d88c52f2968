"""pymemcache (text protocol): typical usage gives the same results through the proxy as direct."""

from __future__ import annotations

from pymemcache.client.base import Client

from tests.clients.conftest import CasNames, Pair, host_port


def scenario(addr: str) -> list:
    client = Client(host_port(addr), timeout=5, connect_timeout=5)
    cas = CasNames()
    seen: list = []
    try:
        seen.append(client.set("a", b"1", expire=100))
        seen.append(client.get("a"))
        seen.append(client.set_many({"b": b"2", "c": b"3", "d": b"4"}, expire=100))
        seen.append(sorted(client.get_many(["a", "b", "c", "nope"]).items()))
        seen.append(client.add("a", b"x"))
        seen.append(client.add("e", b"5"))
        seen.append(client.replace("nope", b"x"))
        seen.append(client.append("a", b"+"))
        seen.append(client.prepend("a", b"-"))
        seen.append(client.get("a"))
        value, token = client.gets("a")
        seen.append((value, cas(int(token))))
        seen.append(client.cas("a", b"cas1", token))
        seen.append(client.cas("a", b"cas2", token))
        seen.append(client.get("a"))
        seen.append(sorted((k, (v, cas(int(t)))) for k, (v, t) in client.gets_many(["a", "b", "zz"]).items()))
        seen.append(client.set("n", b"10"))
        seen.append(client.incr("n", 5))
        seen.append(client.decr("n", 20))
        seen.append(client.incr("nope", 1))
        seen.append(client.touch("b", 300))
        seen.append(client.touch("nope", 300))
        seen.append(client.get("b"))
        seen.append(client.delete("c"))
        seen.append(client.delete("c", noreply=False))
        seen.append(client.get("c"))
        seen.append(client.delete_many(["b", "d"]))
        seen.append(sorted(client.get_many(["a", "b", "d", "e", "n"]).items()))
        seen.append(client.set("q", b"quiet", noreply=True))
        seen.append(client.get("q"))
    finally:
        client.close()
    return seen


def test_pymemcache_same_through_proxy(pair: Pair) -> None:
    assert scenario(pair.proxy) == scenario(pair.direct)
