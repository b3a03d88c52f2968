"""A smart client (pylibmc, ketama_weighted) over the same member names reaches each key's owner
directly: no request is forwarded, and every key is readable through any proxy."""

from __future__ import annotations

import urllib.request

import pytest

from tests.ring.libs import pylibmc
from tests.ring.tier import Tier


def forwarded(tier: Tier, i: int) -> float:
    with urllib.request.urlopen(f"http://{tier.pairs[i].admin}/metrics", timeout=5) as r:
        return sum(float(line.rsplit(" ", 1)[1]) for line in r.read().decode().splitlines()
                   if line.startswith("cacheproxy_ring_forwarded_total"))


@pytest.mark.skipif(pylibmc is None, reason="pylibmc needs libmemcached-dev to build")
def test_smart_client_needs_no_forwarding() -> None:
    assert pylibmc is not None
    tier = Tier.start(3)
    try:
        keys = [f"smart:{i}" for i in range(2000)]
        client = pylibmc.Client([p.addr for p in tier.pairs], behaviors={"ketama_weighted": True})
        client.set_multi({k: k.encode() for k in keys})
        assert client.get_multi(keys) == {k: k.encode() for k in keys}
        client.disconnect_all()
        assert [forwarded(tier, i) for i in range(3)] == [0.0, 0.0, 0.0]
        plain = pylibmc.Client([tier.pairs[1].addr])  # one proxy: it forwards to the owners
        assert plain.get_multi(keys) == {k: k.encode() for k in keys}
        plain.disconnect_all()
        assert forwarded(tier, 1) > 0
    finally:
        tier.stop()
