"""pylibmc (libmemcached), in its text and its binary mode: typical usage gives the same results
through the proxy as direct."""

from __future__ import annotations

import pylibmc
import pytest

from tests.clients.conftest import CasNames, Pair


def outcome(call, *args, **kwargs) -> object:
    try:
        return call(*args, **kwargs)
    except pylibmc.Error as exc:
        return type(exc).__name__


def scenario(addr: str, binary: bool) -> list:
    client = pylibmc.Client([addr], binary=binary, behaviors={"cas": True, "receive_timeout": 5_000_000,
                                                             "send_timeout": 5_000_000})
    cas = CasNames()
    seen: list = []
    try:
        seen.append(outcome(client.set, "a", b"1", time=100))
        seen.append(outcome(client.get, "a"))
        seen.append(outcome(client.set_multi, {"b": b"2", "c": b"3", "d": 4}, time=100))
        seen.append(sorted(client.get_multi(["a", "b", "c", "d", "nope"]).items()))
        seen.append(outcome(client.add, "a", b"x"))
        seen.append(outcome(client.add, "e", b"5"))
        seen.append(outcome(client.replace, "nope", b"x"))
        seen.append(outcome(client.append, "a", b"+"))
        seen.append(outcome(client.prepend, "a", b"-"))
        seen.append(outcome(client.get, "a"))
        value, token = client.gets("a")
        seen.append((value, cas(token)))
        seen.append(outcome(client.cas, "a", b"c1", token))
        seen.append(outcome(client.cas, "a", b"c2", token))
        seen.append(outcome(client.get, "a"))
        seen.append(outcome(client.set, "n", 10))
        seen.append(outcome(client.incr, "n", 5))
        seen.append(outcome(client.decr, "n", 20))
        seen.append(outcome(client.incr, "nope", 1))
        seen.append(outcome(client.touch, "b", 300))
        seen.append(outcome(client.touch, "nope", 300))
        seen.append(outcome(client.delete, "c"))
        seen.append(outcome(client.delete, "c"))
        seen.append(outcome(client.delete_multi, ["b", "d"]))
        seen.append(sorted(client.get_multi(["a", "b", "c", "d", "e", "n"]).items()))
    finally:
        client.disconnect_all()
    return seen


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_pylibmc_same_through_proxy(pair: Pair, binary: bool) -> None:
    assert scenario(pair.proxy, binary) == scenario(pair.direct, binary)
