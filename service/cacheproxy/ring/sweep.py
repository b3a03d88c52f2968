"""The orphan sweep: once the ring settles, a member deletes its copies of keys it no longer owns.

Why: when a ring change moves a key, its copy stays behind on the previous owner. The warm-up
reads it and writes during the window delete it, but a copy nobody touched outlives the window.
From then on writes and deletes reach the new owner only, so the copy left behind can grow stale;
if a later change hands the key back (a scale-out undone by a scale-in), that copy would be
served: a value overwritten or deleted in between. So each member, once its ring is settled (phase
``serve``, no ``previous``, the warm-up window over), lists its own memcacheds' keys
(``lru_crawler metadump hash``) and deletes (``md <key> b q``, base64 so any key works) every key
the ring gives to another member.

The listing walks memcached's hash table, bucket by bucket under the bucket's lock, with the
table's growth held off: every item present for the whole walk is listed. Walking the LRUs
(``metadump all``) is not enough: an item the LRU maintainer moves between sub-LRUs during the
crawl (a fetched item bumped out of COLD, say) can be passed over; on a loaded host about one key
in ten was missed. ``all`` remains the fallback for a memcached without ``hash`` (before 1.6.9).

The sweep is a background task on its own connections, in batches; it stops when the ring changes
under it (the next settled ring sweeps again) and retries later when memcached's crawler is busy.
Chunk items (``_c:<token>:<i>``, see :mod:`cacheproxy.handlers.chunk_format`) are skipped: they
are reachable only through their metadata item, which is swept under its own key.
Counted in ``cacheproxy_ring_warmup_total{event="sweep_scanned"|"sweep_deleted"}``; a sweep that stops
to be retried in ``cacheproxy_ring_sweep_retries_total{reason="busy"|"failed"}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from urllib.parse import unquote_to_bytes

from ..backends.address import Address
from ..metrics.stats import STATS

log = logging.getLogger("cacheproxy.ring")

BATCH = 500  # deletes sent before waiting for memcached to catch up (an ``mn``)
RETRY_SECONDS = 5.0  # after memcached refused the crawl (BUSY) or the connection failed
LINE_MAX = 4096  # a metadump line: the key (url-encoded, <= 750 bytes) and a few numbers
_CHUNK_KEY = re.compile(rb"_c:[0-9a-f]{16}:[0-9]+")

Owned = Callable[[bytes], bool]  # is this key this member's under the ring being swept?


def metadump_key(line: bytes) -> bytes | None:
    """The key of one ``lru_crawler metadump`` line (``key=<url-encoded> exp=... ...``)."""
    if not line.startswith(b"key="):
        return None
    end = line.find(b" ")
    return unquote_to_bytes(line[4:end if end > 0 else len(line)])


def is_chunk_key(key: bytes) -> bool:
    return _CHUNK_KEY.fullmatch(key) is not None


async def _open(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.is_unix:
        return await asyncio.open_unix_connection(address.path, limit=LINE_MAX * 4)
    return await asyncio.open_connection(address.host, address.port, limit=LINE_MAX * 4)


class ListingStopped(Exception):
    """memcached refused the crawl (``reason`` busy) or the connection failed (``failed``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


async def listed_keys(address: Address) -> AsyncGenerator[bytes, None]:
    """Every key on ADDRESS (``lru_crawler metadump hash``, or ``all`` before memcached 1.6.9),
    chunk items left out; raises :class:`ListingStopped`. Close it (``contextlib.aclosing``) when
    leaving early: that closes its connection."""
    lister = None
    try:
        lister = await _open(address)
        lister[1].write(b"lru_crawler metadump hash\r\n")
        first = True
        while True:
            line = await lister[0].readline()
            if not line:
                raise ListingStopped("failed", "memcached closed the listing")
            if line == b"END\r\n":
                return
            if first and line.startswith((b"ERROR", b"CLIENT_ERROR")):  # no hash walk: walk the LRUs
                lister[1].write(b"lru_crawler metadump all\r\n")
                first = False
                continue
            first = False
            if line.startswith((b"BUSY", b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                raise ListingStopped("busy", f"memcached answered {line.strip()[:80]!r}")
            key = metadump_key(line)
            if key is not None and not is_chunk_key(key):
                yield key
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        raise ListingStopped("failed", str(exc) or type(exc).__name__) from exc
    finally:
        if lister is not None:
            lister[1].close()


async def sweep_one(address: Address, owned: Owned, current: Callable[[], bool]) -> tuple[int, int] | None:
    """Delete the keys on ADDRESS that OWNED says belong elsewhere, while CURRENT() stays true.
    (scanned, deleted), or None when memcached was busy or the sweep was cut short."""
    deleter = None
    try:
        deleter = await _open(address)
        scanned = deleted = pending = 0
        async with contextlib.aclosing(listed_keys(address)) as keys:
            async for key in keys:
                scanned += 1
                if owned(key):
                    continue
                deleter[1].write(b"md %s b q\r\n" % base64.b64encode(key))
                deleted += 1
                pending += 1
                if pending >= BATCH:
                    if not current():
                        return None
                    deleter[1].write(b"mn\r\n")
                    await deleter[0].readuntil(b"MN\r\n")
                    pending = 0
        if pending:
            deleter[1].write(b"mn\r\n")
            await deleter[0].readuntil(b"MN\r\n")
        return scanned, deleted
    except ListingStopped as exc:
        STATS.ring_sweep_retries[exc.reason] += 1
        log.info("orphan sweep of %s stopped (%s); retrying in %.0fs", address, exc, RETRY_SECONDS)
        return None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        STATS.ring_sweep_retries["failed"] += 1
        log.info("orphan sweep of %s stopped (%s); retrying in %.0fs", address, exc, RETRY_SECONDS)
        return None
    finally:
        if deleter is not None:
            deleter[1].close()


class OrphanSweep:
    """Runs at most one sweep at a time over this member's memcacheds (L1, and L2 if any)."""

    def __init__(self, addresses: Sequence[Address]) -> None:
        self.addresses = list(addresses)
        self.task: asyncio.Task | None = None
        self.swept_generation = 0  # the last ring generation swept to its end (GET /ring)

    def request(self, generation: int, owned: Owned, current: Callable[[], bool], delay: float) -> None:
        """Sweep for ring GENERATION in DELAY seconds (when its warm-up window ends); a sweep
        already running for an older ring stops at its next batch (CURRENT turns false)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = asyncio.get_running_loop().create_task(self._run(generation, owned, current, delay))

    async def _run(self, generation: int, owned: Owned, current: Callable[[], bool], delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
        while current():
            scanned = deleted = 0
            for address in self.addresses:
                result = await sweep_one(address, owned, current)
                if result is None:
                    break
                scanned, deleted = scanned + result[0], deleted + result[1]
            else:
                STATS.ring_warmup["sweep_scanned"] += scanned
                STATS.ring_warmup["sweep_deleted"] += deleted
                self.swept_generation = STATS.ring_swept_generation = generation
                log.info("ring generation %d: orphan sweep deleted %d of %d keys", generation, deleted, scanned)
                return
            await asyncio.sleep(RETRY_SECONDS)

    def close(self) -> None:
        if self.task is not None:
            with contextlib.suppress(RuntimeError):
                self.task.cancel()
