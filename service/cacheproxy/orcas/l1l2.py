"""L1L2 and L1L2Batch: a memory L1 in front of a disk L2 (memcached with extstore).

L2 is the source of truth and L1 a cache of it, as in Rend. A client must not be able to tell
the two levels apart: every answer is the one memcached would give if it held what L2 holds.
The rules below are what makes that so; the differential matrix in tests/differential/ checks
them byte for byte against a real memcached, and docs/memcached-behaviour.md lists what still
differs.

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
still has (``mg ... t``) using *add* semantics, and then read once in L1 (``mg <key>``) so that
L1's copy counts as fetched, as the client's read made it:
  * A plain set could overwrite a newer value that a concurrent writer put in L1 between our L2
    read and our promotion; add only fills an absent key, so the writer's value wins.
  * A reader that read L2 just before a concurrent delete could promote the deleted value into
    L1 after the delete cleared L1. So once the add has landed, L2 is asked again (``mg <key>``)
    and L1's copy is deleted if L2 no longer has the key: a delete ordered after the add clears
    L1 itself, one ordered before it is seen by the check. (A concurrent set needs no check: it
    writes L1 after L2, over the added copy or in its way.)
  * One race remains without locks: two writers of one key (set A and set B interleaving as
    L2=A, L2=B, L1=B, L1=A would leave L1 and L2 different). ``locked: true`` (striped per-key
    locks, below) closes it. An *add* is mirrored into L1 as an add, so a write that reached L1
    first is not overwritten by it (L1 is cleared instead); this is what a ring's warm-up fill
    (an ``ms ... ME``) racing a client's set relies on.
  * An L2 answer carrying lease state (``W`` won, ``X`` stale, ``Z`` token already sent) is never
    promoted: lease and staleness live only in L2, so L1 never holds an item that has them.

What each level owns, and so which level answers:
  * CAS values. L1 and L2 number their items independently (memcached 1.6.18 cannot be told a
    CAS value to use), and every CAS check happens in L2. So every read that reports a CAS reads
    L2: ``gets``/``gats``, ``mg`` with ``c``, and every binary get (binary answers always carry
    the CAS).
  * Leases, win/stale flags and TTL changes made by reads. ``mg`` with ``N`` (vivify on miss),
    ``R`` (recache: win when the TTL is below the token) or ``E`` is served by L2, whatever other
    flags it has, so the client gets L2's ``W``/``X``/``Z`` and the item it created lives in L2.
    ``mg`` with ``T`` (touch) is served by L2; then L1's copy is touched to the same TTL if L2
    had the item, or deleted if it did not.
  * Everything else about an item (value, client flags, size, TTL left, hit-before, last access)
    is the same in both levels for an item L1 holds, and ``mg`` without ``c N R T E`` is served
    by L1: ``v f s t k O q b u h l`` all describe L1's copy. An L1 miss (``EN``, or no answer to a
    quiet ``mg``) asks L2 the same line, so every flag then describes L2's item; a hit is then
    promoted (above). ``h`` and ``l`` in an ``mg`` served by L2 (one with ``c N R T E``) describe
    L2's copy, which does not see the reads that L1 served (documented as a difference).

The meta rule table (``q`` is honoured by the level that answers; a quiet command goes to its
backend with ``mn`` after it):

  ==============================  ==========  =============================================
  command                         answered by then
  ==============================  ==========  =============================================
  mg (no c N R T E)               L1, else L2 an L2 hit without W/X/Z is promoted into L1
  mg with c, N, R or E            L2          L1's copy deleted if the answer has W/X/Z
  mg with T                       L2          L1 touched (L2 hit) or deleted (L2 miss)
  ms in mode S/E/R, without I     L2          once stored, L1 set to the same item
  other ms (MA, MP, I, invalid)   L2          L1's copy deleted
  md (I, C, T, q, ...)            L2          L1's copy deleted
  ma (N, J, D, C, M, q, ...)      L2          L1's copy deleted
  me                              L2          nothing
  mn                              L1          nothing (answers leave in request order)
  ==============================  ==========  =============================================

Most meta writes invalidate rather than update L1: their many modes and flags (invalidation,
stale sets, vivifying increments, appends that keep the old flags and TTL) are decided in L2
alone; the next read promotes L2's exact item. The same goes for incr/decr. An ``ms`` that sets,
adds or replaces (with or without ``C``, quiet or not) leaves a fully known item once L2 stored
it, so L1 is set to the same value, client flags and TTL (binary stores arrive as such ``ms``).
Text stores (set/add/replace/append/prepend/cas) are mirrored into L1 too (set, or the same mode
for add/replace/append/prepend), since their outcome is fully known from L2's answer; touch and gat
touch both levels.

One client's requests keep memcached's per-connection order (see ``_run``). A run of writes is
*pipelined*: each is sent to L2 as it arrives, without waiting for the one before, and its L1
step is sent from L2's answer. Each level's connection is a FIFO pipeline and L2 answers in
order, so both levels still see the client's writes in the client's order; this is what lets a
flood of quiet stores (``set_multi``) run at pipeline speed instead of two round trips each.

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
from ..handlers.base import Handler, TextShortcuts
from ..metrics.stats import STATS
from ..protocol.meta import MetaResponse, code_of
from ..protocol.requests import ADD, APPEND, PREPEND, REPLACE, SET

log = logging.getLogger(__name__)

LOCK_STRIPES = 1024


class Levels:
    """Awaitable access to one level's handler: ``await level.get(key, cas=True)``. Each method is
    the handler's operation of the same name, its callback turned into a future (a late answer
    after the future is done is dropped)."""

    __slots__ = ("handler", "loop", "name")

    def __init__(self, name: str, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.name, self.handler, self.loop = name, handler, loop

    def _pending(self) -> tuple[asyncio.Future, Callback]:
        fut = self.loop.create_future()

        def done(resp: Any) -> None:
            if not fut.done():
                fut.set_result(resp)

        return fut, done

    def get(self, key: bytes, *, cas: bool = False, exptime: int | None = None, ttl: bool = False) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.get(key, done, cas=cas, exptime=exptime, ttl=ttl)
        return fut

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.store(mode, key, flags, exptime, data, cas_unique, done)
        return fut

    def delete(self, key: bytes, *, base64: bool = False) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.delete(key, done, base64=base64)
        return fut

    def touch(self, key: bytes, exptime: int) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.touch(key, exptime, done)
        return fut

    def meta(self, line: bytes, data: bytes | None, quiet: bool) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.meta(line, data, quiet, done)
        return fut

    def text(self, line: bytes, multiline: bool) -> asyncio.Future:
        fut, done = self._pending()
        self.handler.text(line, multiline, done)
        return fut


def _ignore(resp: Any) -> None:
    pass


class StripedLocks:
    """Per-key mutual exclusion without a lock per key: keys hash onto a fixed set of locks."""

    def __init__(self, stripes: int = LOCK_STRIPES) -> None:
        self.locks = [asyncio.Lock() for _ in range(stripes)]

    def __call__(self, key: bytes) -> asyncio.Lock:
        return self.locks[zlib.crc32(key) % len(self.locks)]


#: ``mg`` flags that make L2 answer: the CAS value, leases and TTL changes are L2's (see above).
L2_READ_FLAGS = frozenset((b"c", b"N", b"R", b"T", b"E"))
#: ``mg`` flags that change the item (or create one): such an ``mg`` is ordered as a write.
CHANGING_FLAGS = frozenset((b"N", b"R", b"T", b"E"))
#: Returned flags that mark an item with lease state, which only L2 may hold.
LEASE_TOKENS = frozenset((b"W", b"X", b"Z"))
NO_BUMP = frozenset((b"u",))  # mg u: the read does not count as a fetch
OK_CODES = (b"HD", b"NS")  # an L1 mirror that stored, or found nothing to replace/append to


def has_lease_state(resp: MetaResponse) -> bool:
    return any(token in LEASE_TOKENS for token in resp.line.split(b" ")[1:])


class MetaLine:
    """The parts of a client's meta command that decide its routing (the line is sent as is)."""

    __slots__ = ("base64", "command", "flags", "key", "tokens")

    def __init__(self, line: bytes) -> None:
        tokens = line.split(b" ")
        if b"" in tokens:  # runs of spaces
            tokens = [t for t in tokens if t]
        self.tokens = tokens
        self.command = tokens[0] if tokens else b""
        self.key = tokens[1] if len(tokens) > 1 else b""
        # ms carries its data length before the flags
        self.flags = tokens[3:] if self.command == b"ms" else tokens[2:]
        self.base64 = any(t[:1] == b"b" for t in self.flags)

    def mirror(self) -> bytes | None:
        """For an ``ms`` whose success stores exactly its value (mode set, add or replace, not an
        invalidating ``I`` store): the ``ms`` line that sets the same item in L1 (same length,
        client flags, TTL and key encoding). None for every other ``ms``: append/prepend keep the
        old item's flags and TTL, and an ``I`` store may leave a stale item, so L1 is dropped."""
        mode, client_flags, ttl = b"S", b"0", b"0"
        for token in self.flags:
            head = token[:1]
            if head == b"M":
                mode = token[1:].upper()
            elif head == b"F":
                client_flags = token[1:]
            elif head == b"T":
                ttl = token[1:]
            elif head == b"I":
                return None
        if mode not in (b"S", b"E", b"R") or len(self.tokens) < 3:
            return None
        l1_mode = b" ME" if mode == b"E" else b""  # an add stays an add (see the module docstring)
        return b"ms %s %s F%s T%s%s%s" % (self.key, self.tokens[2], client_flags, ttl, l1_mode,
                                          b" b" if self.base64 else b"")

    def has(self, names: frozenset[bytes]) -> bool:
        return any(t[:1] in names for t in self.flags)

    def flag(self, name: bytes) -> bytes | None:
        for token in self.flags:
            if token[:1] == name:
                return token[1:]
        return None


class L1L2:
    """The L1L2 orca for one client connection (see the module docstring for the rules)."""

    counts_lookups = True  # per level, which the servers cannot see
    promote = True  # write L2 hits back to L1
    refresh_mode = SET  # how a successful L2 store is mirrored into L1
    shortcuts: TextShortcuts | None = None  # every request goes through the orderings below

    def __init__(self, l1: Handler, l2: Handler, loop: asyncio.AbstractEventLoop,
                 locks: StripedLocks | None = None) -> None:
        self.l1, self.l2 = Levels("l1", l1, loop), Levels("l2", l2, loop)
        self.loop, self.locks = loop, locks
        self._last_write: asyncio.Future | None = None  # the last write run as a task (see _run)
        self._reads: list[asyncio.Future] = []
        self._open_reads = 0  # reads started and not finished
        self._pipelined = 0  # pipelined writes not finished (see _write)
        self._drained: asyncio.Future | None = None  # set when _pipelined drops to 0, made on demand

    # -- plumbing --------------------------------------------------------------------------

    def _run(self, key: bytes, coro_fn: Callable, cb: Callback, *args: Any, write: bool = True) -> None:
        """Run one operation as a task; its result (or a SERVER_ERROR) goes to CB exactly once.

        One client's operations keep memcached's per-connection order: a write starts only after
        everything the client sent before it has finished, and a read only after the writes sent
        before it (reads between two writes run together, so a multiget's L1 misses still reach
        L2 in one burst). Without this, ``set k; get k`` pipelined could read L1 before the set
        reached it, and ``get k; set k`` could read the new value."""
        after = [self._last_write] if self._last_write is not None else []
        if self._pipelined:
            after.append(self._writes_drained())
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
            self._open_reads += 1

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
                if not write:
                    self._open_reads -= 1
                done.set_result(None)
            cb(result)

        self.loop.create_task(runner())

    def _writes_drained(self) -> asyncio.Future:
        if self._drained is None:
            self._drained = self.loop.create_future()
        return self._drained

    def _write(self, key: bytes, start: Callable[[Reply], None], cb: Callback) -> None:
        """A write whose steps are callbacks (START sends to L2 and later calls its argument once
        with the client's answer). With nothing but finished reads and pipelined writes before
        it, it starts at once, without a task: see the module docstring. Otherwise (a read still
        running, a write run as a task, or per-key locks) it waits its turn as a task."""
        if self._open_reads or self.locks is not None or (
                self._last_write is not None and not self._last_write.done()):
            self._run(key, self._awaited, cb, start)
            return
        self._pipelined += 1

        def finish(result: Any) -> None:
            self._pipelined -= 1
            if self._pipelined == 0 and self._drained is not None:
                self._drained.set_result(None)
                self._drained = None
            cb(result)

        _guarded_start(start, finish)

    async def _awaited(self, key: bytes, start: Callable[[Reply], None]) -> Any:
        fut = self.loop.create_future()
        _guarded_start(start, fut.set_result)
        return await fut

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        self._run(key, self._get, cb, cas, exptime, write=exptime is not None)

    async def _get(self, key: bytes, cas: bool, exptime: int | None) -> Any:
        if not cas:
            r1 = await self.l1.get(key, exptime=exptime)
            c1 = code_of(r1)
            if c1 == b"VA":
                STATS.lookups[("l1", "hit")] += 1
                if exptime is not None:  # gat: keep L2's TTL in step
                    await self.l2.touch(key, exptime)
                return r1
            if c1 != b"EN":
                STATS.lookups[("l1", "error")] += 1  # fall through to the source of truth
            else:
                STATS.lookups[("l1", "miss")] += 1
        r2 = await self.l2.get(key, cas=cas, exptime=exptime, ttl=True)
        c2 = code_of(r2)
        if c2 == b"VA":
            STATS.lookups[("l2", "hit")] += 1
            if cas and exptime is not None:  # gats: L1's copy (if any) takes the new TTL too
                await self.l1.touch(key, exptime)
            if self.promote and (exptime is None or exptime >= 0):
                await self._promote(key, r2)
        elif c2 == b"EN":
            STATS.lookups[("l2", "miss")] += 1
        return r2

    async def _promote(self, key: bytes, resp: MetaResponse, fetched: bool = True) -> None:
        """Write an L2 hit back to L1 before answering, so the next read is an L1 hit. FETCHED:
        the client's read counted as a fetch (not ``mg ... u``), so L1's copy must show it."""
        if has_lease_state(resp):
            return  # a lease or a stale item: only L2 may hold it
        ttl = int(resp.flag(b"t") or b"-1")
        if ttl == 0 or ttl < -1:
            return  # about to expire (or expired) in L2: not worth an L1 copy
        flags = int(resp.flag(b"f") or b"0")
        adding = self.l1.store(ADD, key, flags, 0 if ttl < 0 else ttl, resp.value or b"", 0)
        if fetched:  # pipelined behind the add: marks L1's copy fetched, as the read made L2's
            await self.l1.meta(b"mg " + key, None, False)
        if code_of(await adding) != b"HD":
            return
        STATS.l2_promotions += 1
        # A delete may have run between our L2 read and the add (L2, then L1: before the add
        # landed). Asked after the add, L2 tells: gone there means the copy just added is stale.
        if code_of(await self.l2.meta(b"mg " + key, None, False)) == b"EN":
            await self.l1.delete(key)

    # -- writes ----------------------------------------------------------------------------

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        l1_mode = mode if mode in (APPEND, PREPEND, REPLACE) else self.refresh_mode
        if mode == ADD and l1_mode == SET:
            l1_mode = ADD  # an add stays an add (see the module docstring)
        l1_ok = (b"HD",) if l1_mode == ADD else OK_CODES  # an add L1 refused: L1 held another copy
        l1, l2 = self.l1.handler, self.l2.handler

        def start(answer: Reply) -> None:
            def l2_done(r2: Any) -> None:
                if code_of(r2) != b"HD":
                    answer(r2)
                    return

                def l1_done(r1: Any) -> None:
                    if code_of(r1) not in l1_ok:
                        l1.delete(key, _ignore)
                    answer(r2)

                l1.store(l1_mode, key, flags, exptime, data, 0, answer.guard(l1_done))

            l2.store(mode, key, flags, exptime, data, cas_unique, answer.guard(l2_done))

        self._write(key, start, cb)

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        self._write(key, self._then_l1_delete(key, base64, lambda done: self.l2.handler.delete(
            key, done, base64=base64)), cb)

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        l1, l2 = self.l1.handler, self.l2.handler

        def start(answer: Reply) -> None:
            def l2_done(r2: Any) -> None:
                l1.touch(key, exptime, lambda r1: answer(r2))

            l2.touch(key, exptime, answer.guard(l2_done))

        self._write(key, start, cb)

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        self._write(key, self._then_l1_delete(key, False, lambda done: self.l2.handler.arith(
            key, delta, incr, done)), cb)

    def _then_l1_delete(self, key: bytes, base64: bool, send_l2: Callable[[Callback], None]
                        ) -> Callable[[Reply], None]:
        """A write decided by L2 alone, after which L1's copy is deleted (the next read promotes
        L2's item); the client hears L2's answer once L1's delete is answered."""
        l1 = self.l1.handler

        def start(answer: Reply) -> None:
            def l2_done(r2: Any) -> None:
                if key:
                    l1.delete(key, lambda r1: answer(r2), base64=base64)
                else:
                    answer(r2)

            send_l2(answer.guard(l2_done))

        return start

    # -- meta and text ---------------------------------------------------------------------

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        """Routed by the rule table in the module docstring."""
        parsed = MetaLine(line)
        command, key = parsed.command, parsed.key
        if command == b"mg":
            if parsed.has(L2_READ_FLAGS):
                self._run(key, self._mg_l2, cb, line, quiet, parsed, write=parsed.has(CHANGING_FLAGS))
            else:
                self._run(key, self._mg, cb, line, quiet, parsed, write=False)
        elif command == b"mn":
            self._run(key, self._level_meta, cb, self.l1, line, data, quiet, write=False)
        elif command == b"me":
            self._run(key, self._level_meta, cb, self.l2, line, data, quiet, write=False)
        elif command == b"ms" and data is not None and key and (mirror := parsed.mirror()) is not None:
            self._write(key, self._ms_mirrored(key, line, data, quiet, mirror, parsed.base64), cb)
        else:  # md / ma / other ms, and anything else memcached will refuse: L2 decides
            self._write(key, self._then_l1_delete(key, parsed.base64, lambda done: self.l2.handler.meta(
                line, data, quiet, done)), cb)

    def _ms_mirrored(self, key: bytes, line: bytes, data: bytes, quiet: bool, mirror: bytes,
                     base64: bool) -> Callable[[Reply], None]:
        """An ``ms`` whose success leaves a known item (see MetaLine.mirror): once L2 stored it,
        L1 is set to the same value, client flags and TTL; otherwise L1's copy is deleted."""
        l1, l2 = self.l1.handler, self.l2.handler

        def start(answer: Reply) -> None:
            def l2_done(r2: Any) -> None:
                stored = r2 is None if quiet else code_of(r2) == b"HD"  # quiet: HD is not sent
                if not stored:
                    l1.delete(key, lambda r1: answer(r2), base64=base64)
                    return

                def l1_done(r1: Any) -> None:
                    if code_of(r1) != b"HD":
                        l1.delete(key, _ignore, base64=base64)
                    answer(r2)

                l1.meta(mirror, data, False, answer.guard(l1_done))

            l2.meta(line, data, quiet, answer.guard(l2_done))

        return start

    async def _level_meta(self, key: bytes, level: Levels, line: bytes, data: bytes | None, quiet: bool) -> Any:
        return await level.meta(line, data, quiet)

    async def _mg(self, key: bytes, line: bytes, quiet: bool, parsed: MetaLine) -> Any:
        r1 = await self.l1.meta(line, None, quiet)
        if not ((quiet and r1 is None) or code_of(r1) == b"EN"):
            STATS.lookups[("l1", "hit" if code_of(r1) in (b"VA", b"HD") else "error")] += 1
            return r1
        STATS.lookups[("l1", "miss")] += 1
        r2 = await self.l2.meta(line, None, quiet)
        c2 = code_of(r2)
        STATS.lookups[("l2", "hit" if c2 in (b"VA", b"HD") else "miss")] += 1
        if self.promote and c2 in (b"VA", b"HD") and not parsed.base64 and not has_lease_state(r2):
            item = await self.l2.get(key, ttl=True)
            if code_of(item) == b"VA":
                await self._promote(key, item, fetched=not parsed.has(NO_BUMP))
        return r2

    async def _mg_l2(self, key: bytes, line: bytes, quiet: bool, parsed: MetaLine) -> Any:
        r2 = await self.l2.meta(line, None, quiet)
        STATS.lookups[("l2", "hit" if code_of(r2) in (b"VA", b"HD") else "miss")] += 1
        if isinstance(r2, MetaResponse) and has_lease_state(r2) and key:
            # a lease was taken or shown: the item's state is L2's alone, L1 must not answer for it
            await self.l1.delete(key, base64=parsed.base64)
            return r2
        ttl = parsed.flag(b"T")
        if ttl is not None and key and isinstance(r2, MetaResponse | None):
            b64 = b" b" if parsed.base64 else b""
            if code_of(r2) in (b"VA", b"HD"):
                await self.l1.meta(b"mg %s T%s%s" % (key, ttl, b64), None, False)
            elif r2 is None or r2.code == b"EN":
                await self.l1.delete(key, base64=parsed.base64)
        return r2

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        self._run(b"", self._text, cb, line, multiline, write=line.startswith(b"flush_all"))

    async def _text(self, key: bytes, line: bytes, multiline: bool) -> Any:
        if line.startswith(b"flush_all"):
            r2 = await self.l2.text(line, multiline)
            await self.l1.text(line, multiline)
            return r2
        return await self.l1.text(line, multiline)

    def close(self) -> None:
        """The client went away. Every callback still owed is answered (a handler's queue, or an
        owned connection's in-flight requests), so no operation is left waiting forever."""
        self.l1.handler.close()
        self.l2.handler.close()


class Reply:
    """A write's answer to its client, given exactly once. ``guard`` wraps each step that a backend
    connection calls back: a fault in a step is logged and answered as a SERVER_ERROR, and never
    propagates into the (possibly shared) backend connection whose read called it."""

    __slots__ = ("answered", "cb")

    def __init__(self, cb: Callback) -> None:
        self.cb, self.answered = cb, False

    def __call__(self, result: Any) -> None:
        if not self.answered:
            self.answered = True
            self.cb(result)

    def guard(self, step: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(resp: Any) -> None:
            try:
                step(resp)
            except Exception:
                self.internal_error()

        return run

    def internal_error(self) -> None:
        """A bug in a step: logged with its traceback, counted, and answered SERVER_ERROR."""
        log.exception("L1L2 operation failed")
        STATS.errors["server_error"] += 1
        self(BackendError("proxy internal error"))


def _guarded_start(start: Callable[[Reply], None], answer: Callback) -> None:
    reply = Reply(answer)
    try:
        start(reply)
    except Exception:
        reply.internal_error()


class L1L2Batch(L1L2):
    """For bulk loaders: refresh L1 only where present; never promote on reads."""

    promote = False
    refresh_mode = REPLACE
