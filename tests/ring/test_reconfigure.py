"""Live reconfiguration under load, real processes on loopback.

Sizes (default run): 3 -> 4 -> 3 proxy + memcached pairs; 150 clients spread over the proxies,
each owning 40 keys (6,000 keys written and read concurrently); 10,000 preloaded keys for the
warm-up hit ratio. The operator's two phases are followed: ``prepare`` on every proxy (seen on
each /ring), then ``serve``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from tests.ring.load import Load, hit_ratio, preload
from tests.ring.tier import Tier

CLIENTS, KEYS_PER_CLIENT, PRELOADED = 150, 40, 10_000


def ring_of(tier: Tier, i: int) -> dict:
    return tier.ring_json(i)


async def wait_applied(tier: Tier, indexes: list[int], generation: int, phase: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        views = [await asyncio.to_thread(ring_of, tier, i) for i in indexes]
        if all(v["generation"] == generation and v["phase"] == phase for v in views):
            return
        assert loop.time() < end, views
        await asyncio.sleep(0.1)


async def change(tier: Tier, members: list[int], previous: list[int], proxies: list[int]) -> None:
    """The operator's two steps: prepare everywhere, then serve."""
    tier.generation += 1
    tier.members = members
    tier.write(previous=previous, phase="prepare")
    await wait_applied(tier, proxies, tier.generation, "prepare")
    tier.generation += 1
    tier.write(previous=previous, phase="serve")
    await wait_applied(tier, proxies, tier.generation, "serve")


@pytest.fixture(params=["l1only", "l1l2"])
def tier(request):
    """Each member's local orca: L1Only (the shortcuts), or L1L2 over a second memcached."""
    t = Tier.start(3, spare=1, warmup_seconds=600, l2=request.param == "l1l2")
    yield t
    t.stop()


def test_scale_out_and_in_under_load(tier: Tier) -> None:
    scale_out_and_in(tier, CLIENTS, KEYS_PER_CLIENT, PRELOADED)


@pytest.mark.soak
def test_scale_out_and_in_under_load_soak(tier: Tier) -> None:
    """The full size: 1,000 clients, 100,000 preloaded keys (``-m soak``)."""
    scale_out_and_in(tier, 1000, 20, 100_000)


def scale_out_and_in(tier: Tier, clients: int, keys_per_client: int, preload_count: int) -> None:
    preloaded = [b"pre:%d" % i for i in range(preload_count)]

    async def main() -> dict:
        addrs3 = [tier.pairs[i].addr for i in range(3)]
        await preload(addrs3, preloaded)
        load = Load(addrs3, clients, keys_per_client)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        await asyncio.to_thread(tier.start_proxy, 3)
        await change(tier, [0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3])
        await asyncio.sleep(1.5)
        addrs4 = [tier.pairs[i].addr for i in range(4)]
        out = await hit_ratio(addrs4, preloaded)
        await change(tier, [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3])
        await asyncio.sleep(1.5)
        back = await hit_ratio(addrs4, preloaded)
        load.stop.set()
        await running
        return {"out": out, "in": back, "results": load.results}

    figures = asyncio.run(main())
    r = figures["results"]
    fills = sum(tier.metric(i, 'cacheproxy_ring_warmup_total{event="fill"}') for i in range(4))
    print(f"3->4 hit ratio {figures['out']:.4f}, 4->3 hit ratio {figures['in']:.4f}; "
          f"{r.requests} requests, {r.errors} errors, {r.stale} stale, {r.lost} lost, {r.dropped} dropped; "
          f"warm-up fills {fills:.0f}")
    assert r.examples == [] and r.errors == r.stale == r.lost == r.dropped == 0
    assert figures["out"] >= 0.95 and figures["in"] >= 0.95
    assert r.requests > 1000


def test_sighup_with_changed_and_broken_config_under_load(tier: Tier) -> None:
    async def main() -> object:
        addrs = [tier.pairs[i].addr for i in range(3)]
        load = Load(addrs, CLIENTS, KEYS_PER_CLIENT, seed=11)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        # A changed ring (a new generation, owner_down changed), applied on SIGHUP.
        tier.generation += 1
        tier.extra["owner_down"] = "error"
        tier.write()
        tier.reload_all()
        await wait_applied(tier, [0, 1, 2], tier.generation, "serve")
        await asyncio.sleep(0.5)
        # A broken file: refused, the running config keeps serving.
        good = tier.config.read_text()
        tier.write(text="ring: [this is not: a mapping\n")
        tier.reload_all()
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        refused = 'cacheproxy_config_reloads_total{result="refused"}'
        while not all([await asyncio.to_thread(tier.metric, i, refused) for i in range(3)]):
            assert loop.time() < end
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        for i in range(3):
            assert (await asyncio.to_thread(ring_of, tier, i))["generation"] == tier.generation
        tier.write(text=good)
        load.stop.set()
        await running
        return load.results

    r = asyncio.run(main())
    print(f"SIGHUP under load: {r.requests} requests, {r.errors} errors, {r.stale} stale, {r.lost} lost, "
          f"{r.dropped} dropped")
    assert r.examples == [] and r.errors == r.stale == r.lost == r.dropped == 0
    assert r.requests > 1000
    for pair in tier.pairs[:3]:
        assert pair.proxy is not None and pair.proxy.popen.poll() is None
    assert os.path.exists(tier.config)
    assert signal.SIGHUP  # (sent by tier.reload_all)
    assert json.loads(tier.config.read_text())["ring"]["generation"] == tier.generation
