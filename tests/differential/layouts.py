"""The proxy in each of its layouts, as differential targets, and how to seed item state in them.

Layouts: ``l1only`` (Rend's classic, one backend connection per client), ``batched`` (the shared
pipelined pool, the default), ``l1l2`` (classic) and ``l1l2-batched`` (a memory L1 in front of an
extstore L2), ``l1l2-locked`` (L1L2 with striped per-key locks: every write takes the task path),
``chunked`` (L1Only, batched, with chunking on), ``batch-port`` (L1L2's bulk-loader port,
L1L2Batch: stores refresh L1 only where present, reads never promote), ``ring`` (every key
forwarded: the client's proxy is not a member of the ring it routes to, as a pod joining or leaving
is; the member's proxy serves the keys, batched). Each target keeps its memcacheds' addresses by
level, so a test can put an item where it wants it before a script runs:

* ``l1``: the item is in L1 and in L2 (written to each directly, so each level has its own CAS,
  as after a write through the proxy); for a single-level layout, simply present;
* ``l2``: only in L2 (L1 evicted it, or it was written by the batch port); single level: present;
* ``none``: nowhere.

In ``ring``, ``l1`` and ``l2`` both put the item in the member's memcached.

The direct memcached target gets the item for ``l1`` and ``l2``, and nothing for ``none``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from tests.differential.harness import Reader, reset_memcached
from tests.ring.tier import Tier
from tests.support.procs import Proc, connect, free_port, start_memcached, start_proxy

LAYOUTS = ("l1only", "batched", "l1l2", "l1l2-batched", "l1l2-locked", "chunked", "batch-port", "ring")
TWO_LEVELS = ("l1l2", "l1l2-batched", "l1l2-locked", "batch-port")
STATES = ("l1", "l2", "none")

LAYOUT_CONFIG = {  # batching is the proxy's default; the classic layout is one flag away
    "l1only": "batching: {enabled: false}\n",
    "batched": "batching: {enabled: true, max_connections: 2}\n",
    "l1l2": "batching: {enabled: false}\n",
    "l1l2-batched": "batching: {enabled: true, max_connections: 2}\n",
    "l1l2-locked": "locked: true\n",
    "chunked": "chunking: {enabled: true}\n",
    "batch-port": "batching: {enabled: false}\n",  # L1L2, with the batch port added below
    "ring": "batching: {enabled: true, max_connections: 2}\n",
}


@dataclass(frozen=True)
class Item:
    key: bytes
    value: bytes
    flags: int = 0
    ttl: int = 0


@dataclass
class LayoutTarget:
    """A differential target: clients connect to ``addr``; ``levels`` are its memcacheds by name."""

    layout: str
    addr: str
    levels: dict[str, str]
    procs: list[Proc]
    tmp: tempfile.TemporaryDirectory | None = None

    @property
    def backend(self) -> str:
        return self.levels["l1"]

    def alive(self) -> bool:
        return all(p.popen.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        if self.tmp is not None:
            self.tmp.cleanup()

    def reset(self) -> None:
        for addr in self.levels.values():
            reset_memcached(addr)

    def seed(self, items: Sequence[Item], state: str) -> None:
        if state == "none":
            return
        two_levels = "l2" in self.levels
        names = ("l1",) if not two_levels else ("l2", "l1") if state == "l1" else ("l2",)
        for name in names:
            put(self.levels[name], items)


@dataclass
class RingTarget(LayoutTarget):
    """The ``ring`` layout: ``addr`` is a proxy outside TIER's ring, whose one member owns every
    key, so every request is forwarded over the peer connections and served by that member's
    proxy. One member, not several: keys on two members get CAS values from two counters, and
    two keys could then show the same one (harmless to a client, which compares a key's CAS only
    with that key's, but a difference to the harness, which checks the equality of every CAS in a
    transcript); and one memcached shared by several members would see a ``flush_all noreply``
    from one member land after a write through another. Multi-key requests split over several
    owners are checked in tests/ring/test_routing.py."""

    tier: Tier | None = None

    def stop(self) -> None:
        assert self.tier is not None
        self.tier.stop()


def start_ring() -> RingTarget:
    tier = Tier.start(1, spare=1, top={"batching": {"enabled": True, "max_connections": 2}})
    try:
        outside = tier.start_proxy(1)
    except Exception:
        tier.stop()
        raise
    procs = [p for pair in tier.pairs for p in (pair.proxy, pair.memcached) if p is not None]
    return RingTarget("ring", outside.addr, {"l1": tier.pairs[0].memcached.addr}, procs, tier=tier)


def put(addr: str, items: Sequence[Item]) -> None:
    """Store ITEMS in the memcached at ADDR with text ``set`` (each must answer STORED)."""
    with connect(addr) as sock:
        sock.sendall(b"".join(b"set %s %d %d %d\r\n%s\r\n" % (i.key, i.flags, i.ttl, len(i.value), i.value)
                              for i in items))
        reader = Reader(sock, 5.0)
        for item in items:
            got = reader.unit().raw()
            if got != b"STORED\r\n":
                raise RuntimeError(f"seeding {item.key!r} at {addr} answered {got!r}")


def start_direct() -> LayoutTarget:
    mc = start_memcached()
    return LayoutTarget("memcached", mc.addr, {"l1": mc.addr}, [mc])


def start_layout(layout: str) -> LayoutTarget:
    """The proxy in LAYOUT with fresh memcacheds behind it (L2 with extstore in a temp folder)."""
    if layout == "ring":
        return start_ring()
    tmp = tempfile.TemporaryDirectory(prefix="cacheproxy-layout-")
    procs: list[Proc] = []
    try:
        l1 = start_memcached()
        procs.append(l1)
        levels = {"l1": l1.addr}
        l2_addr = None
        if layout in TWO_LEVELS:
            l2 = start_memcached(args=["-o", f"ext_path={tmp.name}/extstore:64m"])
            procs.append(l2)
            levels["l2"] = l2_addr = l2.addr
        config = os.path.join(tmp.name, "config.yaml")
        with open(config, "w") as f:
            f.write(LAYOUT_CONFIG[layout])
        args = ["--config", config]
        batch_port = free_port() if layout == "batch-port" else None
        if batch_port:
            args += ["--batch-listen", f"127.0.0.1:{batch_port}"]
        proxy = start_proxy(l1.addr, l2=l2_addr, args=args)
        procs.insert(0, proxy)
    except Exception:
        for p in procs:
            p.stop()
        tmp.cleanup()
        raise
    return LayoutTarget(layout, f"127.0.0.1:{batch_port}" if batch_port else proxy.addr, levels, procs, tmp)
