"""The hand-over: while a ring change warms up, each previous owner pushes its moved keys over.

Why: the warm-up (:mod:`cacheproxy.ring.warmup`) moves a key when somebody reads it in the
window. A key nobody reads in time stays behind on its previous owner, and once the ring settles
the orphan sweep (:mod:`cacheproxy.ring.sweep`) deletes that copy: the key is a miss although the
tier held it all along. So when a proxy enters a warm-up window it lists its own memcacheds' keys
and, for each key it owned under the previous ring that another member owns now, reads it through
a ring router of its own with ``mg <key> b``: exactly a client's read in the window. The new
owner misses, the router fills it from this member (an *add* with the remaining TTL), re-reads the
copy here and undoes the fill if a racing write changed or removed it. Nothing new is proven here:
every race a fill can meet is the one :mod:`cacheproxy.ring.warmup` already handles for clients.

Bounded: at most :data:`IN_FLIGHT` reads at a time, and the hand-over stops as soon as the window
ends or the ring changes (a later window hands over again). A memcached whose crawler is busy
(another listing, an orphan sweep) is retried after :data:`RETRY_SECONDS`. Counted in
``cacheproxy_ring_warmup_total{event="handover_listed"}`` (moved keys asked for) beside the
``fill`` events the reads cause. ``GET /ring`` says ``handing_over: true`` while one runs (the
operator keeps the window open until every pod's is done) and ``handed_over_generation``, the
generation whose hand-over last finished.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..backends.address import Address
from ..metrics.stats import STATS
from ..orcas.base import Orca
from .sweep import ListingStopped, listed_keys

log = logging.getLogger("cacheproxy.ring")

IN_FLIGHT = 64  # hand-over reads outstanding at once
RETRY_SECONDS = 5.0

Moved = Callable[[bytes], bool]  # did this member own the key before, and another member now?


class Handover:
    """At most one hand-over at a time over this member's memcacheds (L1, and L2 if any)."""

    def __init__(self, addresses: Sequence[Address], router: Callable[[], Orca]) -> None:
        """ROUTER makes a ring router over this member's local orca, as a client connection gets."""
        self.addresses = list(addresses)
        self.router = router
        self.task: asyncio.Task | None = None
        self.done_generation = 0  # the last generation whose hand-over finished (GET /ring)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def request(self, generation: int, moved: Moved, current: Callable[[], bool]) -> None:
        """Hand over for ring GENERATION while CURRENT() holds; one already running stops."""
        self.close()
        self.task = asyncio.get_running_loop().create_task(self._run(generation, moved, current))

    async def _run(self, generation: int, moved: Moved, current: Callable[[], bool]) -> None:
        while current():
            listed = 0
            router = self.router()
            try:
                for address in self.addresses:
                    listed += await self._one(address, router, moved, current)
            except ListingStopped as exc:
                STATS.ring_warmup["handover_retry"] += 1
                log.info("hand-over stopped (%s); retrying in %.0fs", exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            finally:
                router.close()
            if current():
                self.done_generation = generation
                log.info("ring generation %d: handed over %d keys to their new owners", generation, listed)
            return

    @staticmethod
    async def _one(address: Address, router: Orca, moved: Moved, current: Callable[[], bool]) -> int:
        """Read each moved key on ADDRESS through ROUTER; the number asked for."""
        room = asyncio.Semaphore(IN_FLIGHT)
        listed = 0

        def answered(_: Any) -> None:
            room.release()

        async with contextlib.aclosing(listed_keys(address)) as keys:
            async for key in keys:
                if not moved(key):
                    continue
                await room.acquire()
                if not current():
                    room.release()
                    break
                listed += 1
                STATS.ring_warmup["handover_listed"] += 1
                router.meta(b"mg " + base64.b64encode(key) + b" b", None, False, answered)
        for _ in range(IN_FLIGHT):  # every read answered: the fills they caused are done
            await room.acquire()
        return listed

    def close(self) -> None:
        if self.task is not None:
            with contextlib.suppress(RuntimeError):
                self.task.cancel()
