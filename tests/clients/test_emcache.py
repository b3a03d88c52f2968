"""emcache (asyncio, text protocol): typical usage gives the same results through the proxy."""

from __future__ import annotations

import asyncio

import emcache

from tests.clients.conftest import CasNames, Pair, host_port


async def outcome(call) -> object:
    """The awaited result, or the name of the error emcache raised (NOT_STORED, NOT_FOUND...)."""
    try:
        result = await call
    except emcache.CommandError as exc:
        return type(exc).__name__
    if isinstance(result, emcache.Item):
        return (result.value, result.flags)
    return result


async def scenario(addr: str) -> list:
    host, port = host_port(addr)
    client = await emcache.create_client([emcache.MemcachedHostAddress(host, port)], timeout=5)
    cas = CasNames()
    seen: list = []
    try:
        seen.append(await outcome(client.set(b"a", b"1", flags=3, exptime=100)))
        seen.append(await outcome(client.get(b"a", return_flags=True)))
        seen.append(await outcome(client.add(b"a", b"x")))
        seen.append(await outcome(client.replace(b"nope", b"x")))
        seen.append(await outcome(client.append(b"a", b"+")))
        seen.append(await outcome(client.prepend(b"a", b"-")))
        item = await client.gets(b"a")
        seen.append((item.value, cas(item.cas)))
        seen.append(await outcome(client.cas(b"a", b"c1", item.cas)))
        seen.append(await outcome(client.cas(b"a", b"c2", item.cas)))
        seen.append(await outcome(client.get(b"a")))
        for key in (b"b", b"c"):
            await client.set(key, key * 2, exptime=100)
        many = await client.get_many([b"a", b"b", b"c", b"nope"])
        seen.append(sorted((k, v.value) for k, v in many.items()))
        many = await client.gets_many([b"a", b"b"])
        seen.append(sorted((k, v.value, cas(v.cas)) for k, v in many.items()))
        seen.append(await outcome(client.set(b"n", b"10")))
        seen.append(await outcome(client.increment(b"n", 5)))
        seen.append(await outcome(client.decrement(b"n", 20)))
        seen.append(await outcome(client.increment(b"nope", 1)))
        seen.append(await outcome(client.touch(b"b", 300)))
        seen.append(await outcome(client.touch(b"nope", 300)))
        seen.append(await outcome(client.gat(300, b"c")))
        item = await client.gats(300, b"c")
        seen.append((item.value, cas(item.cas)))
        seen.append(await outcome(client.delete(b"c")))
        seen.append(await outcome(client.delete(b"c")))
        seen.append(await outcome(client.get(b"c")))
        seen.append(await outcome(client.set(b"q", b"quiet", noreply=True)))
        seen.append(await outcome(client.get(b"q")))
    finally:
        await client.close()
    return seen


def test_emcache_same_through_proxy(pair: Pair) -> None:
    assert asyncio.run(scenario(pair.proxy)) == asyncio.run(scenario(pair.direct))
