"""L1L2 and L1L2Batch: a memory L1 in front of a disk L2 (memcached with extstore).

L2 is the source of truth and L1 a cache of it, as in Rend. Each operation is a short
coroutine; the orderings below are chosen for the interleavings noted beside them.

Writes go to L2 first, then L1:
  * If L1 were written first and the L2 write then failed, L1 would serve a value that L2 never
    stored, and it would vanish on the next L1 eviction: a client would see a write "un-happen".
  * If the L1 write fails after L2 succeeded, the L1 copy is deleted, so the next read promotes
    the new value from L2 instead of serving the old one from L1. The client hears L2's answer.

Deletes go to L2 first, then L1:
  * Deleting L1 first opens a window in which a reader misses L1, reads the still-present L2
    value and promotes it back into L1, where it would then outlive its deletion in L2.

Reads go to L1; the misses of one request go to L2 together (their L1 answers arrive in one
read, so the L2 requests leave in one write). L2 hits are written back to L1 with the TTL L2
still has (``mg ... t``) using *add* semantics:
  * A plain set could overwrite a newer value that a concurrent writer put in L1 between our L2
    read and our promotion; add only fills an absent key, so the writer's value wins.
  * One race remains without locks: a reader that read L2 just before a concurrent delete can
    promote the deleted value into L1 after the delete cleared L1. ``locked: true`` (striped
    per-key locks, below) closes it, and closes the concurrent-writers race too (set A and set B
    on one key interleaving as L2=A, L2=B, L1=B, L1=A would leave L1 and L2 different).

``gets``/``gats`` read from L2, since a CAS value is only meaningful from the level that ``cas``
writes to. incr/decr and meta writes go to L2 and then *invalidate* L1 (delete, not update): the
next read promotes the exact L2 item with its flags and TTL, which the proxy does not know.

L1L2Batch (the bulk-loader port): stores refresh L1 only where the key already is (replace
semantics), and reads never promote, so a bulk load does not flush the working set out of L1.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from typing import Any

from ..backends.connection import Callback
from ..backends.errors import BackendError
from ..handlers.base import Handler
from ..handlers.plain import PlainHandler
from ..metrics.stats import STATS
from ..protocol.meta import MetaResponse, code_of
from ..protocol.requests import ADD, APPEND, PREPEND, REPLACE, SET

log = logging.getLogger(__name__)

LOCK_STRIPES = 1024


class Levels:
    """Awaitable access to one level's handler: ``await level.call("get", key, cas=True)``."""

    __slots__ = ("handler", "loop", "name")

    def __init__(self, name: str, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.name, self.handler, self.loop = name, handler, loop

    def call(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future:
        fut = self.loop.create_future()

        def done(resp: Any) -> None:
            if not fut.done():
                fut.set_result(resp)

        getattr(self.handler, method)(*args, done, **kwargs)
        return fut

    def fire(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send without waiting; the answer is dropped (it still keeps the pipeline in step)."""
        getattr(self.handler, method)(*args, _ignore, **kwargs)


def _ignore(resp: Any) -> None:
    pass


class StripedLocks:
    """Per-key mutual exclusion without a lock per key: keys hash onto a fixed set of locks."""

    def __init__(self, stripes: int = LOCK_STRIPES) -> None:
        self.locks = [asyncio.Lock() for _ in range(stripes)]

    def __call__(self, key: bytes) -> asyncio.Lock:
        return self.locks[zlib.crc32(key) % len(self.locks)]


class L1L2:
    """The L1L2 orca for one client connection (see the module docstring for the orderings)."""

    counts_lookups = True  # per level, which the servers cannot see
    plain: PlainHandler | None = None  # every request goes through the orderings below
    promote = True  # write L2 hits back to L1
    refresh_mode = SET  # how a successful L2 store is mirrored into L1

    def __init__(self, l1: Handler, l2: Handler, loop: asyncio.AbstractEventLoop,
                 locks: StripedLocks | None = None) -> None:
        self.l1, self.l2 = Levels("l1", l1, loop), Levels("l2", l2, loop)
        self.loop, self.locks = loop, locks
        self._last_write: asyncio.Future | None = None  # this client's ordering (see _run)
        self._reads: list[asyncio.Future] = []

    # -- plumbing --------------------------------------------------------------------------

    def _run(self, key: bytes, coro_fn: Callable, cb: Callback, *args: Any, write: bool = True) -> None:
        """Run one operation as a task; its result (or a SERVER_ERROR) goes to CB exactly once.

        One client's operations keep memcached's per-connection order: a write starts only after
        everything the client sent before it has finished, and a read only after the writes sent
        before it (reads between two writes run together, so a multiget's L1 misses still reach
        L2 in one burst). Without this, ``set k; get k`` pipelined could read L1 before the set
        reached it, and ``get k; set k`` could read the new value."""
        after = [self._last_write] if self._last_write is not None else []
        if write:
            after += self._reads
            self._reads = []
        done = self.loop.create_future()
        if write:
            self._last_write = done
        else:
            if len(self._reads) >= 32:  # a read-only client: forget reads that have finished
                self._reads = [f for f in self._reads if not f.done()]
            self._reads.append(done)

        async def runner() -> None:
            try:
                for earlier in after:
                    if not earlier.done():
                        await earlier
                if self.locks is not None and key:
                    async with self.locks(key):
                        result = await coro_fn(key, *args)
                else:
                    result = await coro_fn(key, *args)
            except Exception:
                log.exception("L1L2 operation failed")
                STATS.errors["server_error"] += 1
                result = BackendError("proxy internal error")
            finally:
                done.set_result(None)
            cb(result)

        self.loop.create_task(runner())

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        self._run(key, self._get, cb, cas, exptime, write=exptime is not None)

    async def _get(self, key: bytes, cas: bool, exptime: int | None) -> Any:
        if not cas:
            r1 = await self.l1.call("get", key, exptime=exptime)
            c1 = code_of(r1)
            if c1 == b"VA":
                STATS.lookups[("l1", "hit")] += 1
                if exptime is not None:  # gat: keep L2's TTL in step
                    await self.l2.call("touch", key, exptime)
                return r1
            if c1 != b"EN":
                STATS.lookups[("l1", "error")] += 1  # fall through to the source of truth
            else:
                STATS.lookups[("l1", "miss")] += 1
        r2 = await self.l2.call("get", key, cas=cas, exptime=exptime, ttl=True)
        c2 = code_of(r2)
        if c2 == b"VA":
            STATS.lookups[("l2", "hit")] += 1
            if self.promote:
                await self._promote(key, r2)
        elif c2 == b"EN":
            STATS.lookups[("l2", "miss")] += 1
        return r2

    async def _promote(self, key: bytes, resp: MetaResponse) -> None:
        """Write an L2 hit back to L1 before answering, so the next read is an L1 hit."""
        ttl = int(resp.flag(b"t") or b"-1")
        if ttl == 0:
            return  # about to expire in L2: not worth an L1 copy
        flags = int(resp.flag(b"f") or b"0")
        added = await self.l1.call("store", ADD, key, flags, 0 if ttl < 0 else ttl, resp.value, 0)
        if code_of(added) == b"HD":
            STATS.l2_promotions += 1

    # -- writes ----------------------------------------------------------------------------

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        self._run(key, self._store, cb, mode, flags, exptime, data, cas_unique)

    async def _store(self, key: bytes, mode: bytes, flags: int, exptime: int, data: bytes, cas_unique: int) -> Any:
        r2 = await self.l2.call("store", mode, key, flags, exptime, data, cas_unique)
        if code_of(r2) != b"HD":
            return r2
        l1_mode = mode if mode in (APPEND, PREPEND) else self.refresh_mode
        if mode == REPLACE:
            l1_mode = REPLACE
        r1 = await self.l1.call("store", l1_mode, key, flags, exptime, data, 0)
        if code_of(r1) not in (b"HD", b"NS"):  # NS: not in L1 (replace/append): tolerated
            self.l1.fire("delete", key)
        return r2

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        self._run(key, self._delete, cb, base64)

    async def _delete(self, key: bytes, base64: bool) -> Any:
        r2 = await self.l2.call("delete", key, base64=base64)
        await self.l1.call("delete", key, base64=base64)
        return r2

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        self._run(key, self._touch, cb, exptime)

    async def _touch(self, key: bytes, exptime: int) -> Any:
        r2 = await self.l2.call("touch", key, exptime)
        await self.l1.call("touch", key, exptime)
        return r2

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        self._run(key, self._arith, cb, delta, incr)

    async def _arith(self, key: bytes, delta: int, incr: bool) -> Any:
        r2 = await self.l2.call("arith", key, delta, incr)
        if code_of(r2) == b"VA":
            await self.l1.call("delete", key)
        return r2

    # -- meta and text ---------------------------------------------------------------------

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        key = line.split(b" ", 2)[1] if line.count(b" ") else b""
        self._run(key, self._meta, cb, line, data, quiet, write=line[:2] not in (b"mg", b"mn", b"me"))

    async def _meta(self, key: bytes, line: bytes, data: bytes | None, quiet: bool) -> Any:
        command = line[:2]
        if command == b"mn":
            return await self.l1.call("meta", line, data, quiet)
        if command == b"mg":
            r1 = await self.l1.call("meta", line, data, quiet)
            if (quiet and r1 is None) or code_of(r1) == b"EN":
                STATS.lookups[("l1", "miss")] += 1
                r2 = await self.l2.call("meta", line, data, quiet)
                STATS.lookups[("l2", "hit" if code_of(r2) in (b"VA", b"HD") else "miss")] += 1
                return r2
            STATS.lookups[("l1", "hit")] += 1
            return r1
        # ms / md / ma / me: L2 decides; L1's copy is invalidated (base64 keys stay encoded)
        r2 = await self.l2.call("meta", line, data, quiet)
        if command != b"me" and key:
            b64 = any(t[:1] == b"b" for t in line.split(b" ")[2:])
            await self.l1.call("delete", key, base64=b64)
        return r2

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        self._run(b"", self._text, cb, line, multiline, write=line.startswith(b"flush_all"))

    async def _text(self, key: bytes, line: bytes, multiline: bool) -> Any:
        if line.startswith(b"flush_all"):
            r2 = await self.l2.call("text", line, multiline)
            await self.l1.call("text", line, multiline)
            return r2
        return await self.l1.call("text", line, multiline)

    def close(self) -> None:
        """The client went away. Every callback still owed is answered (a handler's queue, or an
        owned connection's in-flight requests), so no operation task is left waiting forever."""
        self.l1.handler.close()
        self.l2.handler.close()


class L1L2Batch(L1L2):
    """For bulk loaders: refresh L1 only where present; never promote on reads."""

    promote = False
    refresh_mode = REPLACE


