"""The routing orca: every key-bearing request is served by its key's owner.

One :class:`RingRouter` per client connection, composed around that connection's local orca.
Owner = this proxy: the local orca, as without a ring. Owner = another member: the request goes
to that member's peer port through a forwarding handler (the same handler kind as the local
orca, on this client's connection of the peer's pool, so one client's requests to one member stay in
order: a read after a write of the same key sees the write). The servers already answer every
request in the order the client sent them, so a multi-key get split over owners is answered as
one memcached would answer it.

* A plain text ``get``/``set`` (the servers' shortcuts) keeps its shortcut when the local orca
  offers them: this member's own key on a settled ring goes straight to the local plain handler;
  any other takes the routes below like any read or plain set, on the owner's plain forwarder (a
  ``set`` travels as the client wrote it, and the owner's proxy serves it by its own shortcut).
* A member marked down (see :mod:`cacheproxy.ring.peers`): reads of its keys answer a miss
  (``owner_down: miss``, counted) or ``SERVER_ERROR``; writes and deletes ``SERVER_ERROR``.
* A member that goes away (its connection refused, closed or reset: a pod being replaced) is
  waited for, for ``down_wait`` seconds after it went down: a request that must reach it and would
  get ``SERVER_ERROR`` (writes, deletes, arithmetic; reads under ``owner_down: error``) is parked
  and sent once the member is back (to the key's owner by the ring then in use), or answered as
  above when the wait ends. A request that was on the wire when the connection ended may have run:
  it is sent again only when running it twice changes nothing (reads, plain sets, deletes without
  a CAS); others answer ``SERVER_ERROR`` (see :data:`AGAIN` and :data:`ONCE`). A read under
  ``owner_down: miss`` answers the miss as soon as its member fails. A timeout is not waited for.
* ``flush_all`` reaches every member (OK only when all answered OK); other text commands
  (stats, version, verbosity) are answered by the local orca.
* Phase ``prepare``: reads by the previous ring (a miss there is asked of the new owner: a proxy
  that already serves may have written it there); every write goes to the previous owner and the
  new owner's copy is deleted (proxies still on the old ring write there alone: a copy on the new
  owner could only go stale).
* Warm-up (phase ``serve``): a read that misses on the new owner is filled from the previous owner
  (:mod:`cacheproxy.ring.warmup`); writes, deletes, touches and arithmetic also delete the
  previous owner's copy before the client hears the answer, and those that depend on the current
  value (add, replace, append, prepend, cas, touch, incr/decr) first move the previous copy over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

from ..backends.connection import BackendConnection, Callback
from ..backends.errors import BackendError
from ..handlers.base import Handler as HandlerBase
from ..handlers.base import TextShortcuts
from ..metrics.stats import STATS
from ..orcas.base import Orca
from ..protocol.meta import MetaResponse, code_of
from .ketama import key_point
from .peers import Forwarded, Peer
from .state import RingState, Target, View, _NoTarget
from .warmup import META_MISS, decode_key, meta_miss, pull, warm_read

Handler = Orca | HandlerBase  # the local orca, or a forwarding handler to a peer
Op = Callable[[Handler, Callback], None]

_OK = b"OK\r\n"

# What a request forwarded to a peer does when its connection fails under it (RoutedForward):
ANSWER = 0  # the client hears the error (secondary requests of a ring change, flush_all)
MISS = 1  # a read under owner_down: miss: the client hears the miss
AGAIN = 2  # may run twice (reads, plain sets, deletes): waits for the member, sent again
ONCE = 3  # must not run twice: waits for the member and is sent again only if it never left


class RoutedForward(Forwarded):
    """A forwarded request that knows how to be sent again (OP, by the router) when its member
    fails under it; see :meth:`RingRouter._failed`."""

    __slots__ = ("miss", "op", "policy", "router")

    def __init__(self, peer: Peer, cb: Callback, router: RingRouter, op: Op, policy: int,
                 miss: MetaResponse | None) -> None:
        super().__init__(peer, cb)
        self.router, self.op, self.policy, self.miss = router, op, policy, miss

    def done(self, resp: MetaResponse | BackendError) -> None:
        if isinstance(resp, BackendError):
            with contextlib.suppress(Exception):  # accounting must never keep the client's answer
                self.peer.answered(resp, self.started)
            self.router._failed(self, resp)
        else:
            super().done(resp)


class RingRouter:
    """An Orca (see orcas/base.py) that routes by the ring; see the module docstring."""

    __slots__ = ("counts_lookups", "forwarders", "local", "make_forwarder", "state")

    def __init__(self, local: Orca, state: RingState,
                 make_forwarder: Callable[[BackendConnection], HandlerBase]) -> None:
        self.local, self.state, self.make_forwarder = local, state, make_forwarder
        self.forwarders: dict[Peer, tuple[int, HandlerBase]] = {}  # peer -> (its epoch, handler)
        # Lookups are counted by the servers unless the local orca counts its own (L1L2).
        self.counts_lookups = local.counts_lookups

    @property
    def shortcuts(self) -> TextShortcuts | None:
        """The router itself, in front of a local orca with shortcuts (its forwarders are then
        plain handlers too: compose.py makes them of the local orca's kind)."""
        return self if self.local.shortcuts is not None else None

    # -- targets ------------------------------------------------------------------------------

    def _handler(self, target: Target) -> Handler | None:
        """The handler that reaches TARGET; None while that member is down."""
        if target is None:
            return self.local
        if not target.up:
            return None
        entry = self.forwarders.get(target)
        if entry is None or entry[0] != target.epoch:
            entry = self.forwarders[target] = (target.epoch, self.make_forwarder(target.connection()))
        return entry[1]

    @staticmethod
    def _cb(target: Target, cb: Callback) -> Callback:
        return cb if target is None else Forwarded(target, cb).done

    def _send(self, target: Target, handler: Handler, op: Op, cb: Callback, policy: int,
              miss: MetaResponse | None = None) -> None:
        """OP on HANDLER (TARGET's); a peer's failure is handled by POLICY (see RoutedForward)."""
        if target is None:
            op(handler, cb)
        else:
            op(handler, RoutedForward(target, cb, self, op, policy, miss).done)

    def _failed(self, fwd: RoutedForward, error: BackendError) -> None:
        """FWD's member failed under it: the miss, a wait for the member, or the error."""
        peer, policy = fwd.peer, fwd.policy
        if policy == MISS:
            STATS.ring_owner_down["miss"] += 1
            fwd.cb(fwd.miss)  # type: ignore[arg-type]  # None: a quiet mg's swallowed miss
            return
        timed_out = "timeout" in error.reason  # a member that hangs is not waited for again
        if policy == ANSWER or timed_out or (error.written and policy != AGAIN) or not peer.may_wait():
            fwd.cb(error)
            return

        def resume(up: bool) -> None:
            handler = self._handler(peer) if up else None
            if handler is not None:
                self._send(peer, handler, fwd.op, fwd.cb, policy, fwd.miss)
            elif up and peer.may_wait():  # down again at once: wait again, within its own window
                peer.park(resume)
            else:
                STATS.ring_owner_down["error"] += 1
                fwd.cb(self._down_error(peer))

        peer.park(resume)

    def _waits(self, target: Target) -> bool:
        """Whether a request for TARGET, a member marked down, waits for it (then parked by the caller)."""
        return target is not None and target.may_wait()

    def _view(self) -> View:
        view = self.state.view
        assert view is not None  # a router is made only once a ring is applied
        return view

    @staticmethod
    def _down_error(target: Target) -> BackendError:
        return BackendError(f"ring member {target.name if target is not None else 'self'} down")

    def _read_down(self, view: View, target: Target, cb: Callback, miss: MetaResponse | None = META_MISS) -> None:
        if view.owner_down_miss:
            STATS.ring_owner_down["miss"] += 1
            cb(miss)  # type: ignore[arg-type]  # None: a quiet mg's swallowed miss
        else:
            STATS.ring_owner_down["error"] += 1
            cb(self._down_error(target))

    # -- reads --------------------------------------------------------------------------------

    def _read(self, hash_key: bytes, token: bytes, b64: bool, op: Op, cb: Callback,
              is_miss: Callable[[Any], bool], miss: MetaResponse | None, point: int | None = None) -> None:
        view = self._view()
        if point is None:
            point = key_point(hash_key)
        target = view.read_owner(point)
        handler = self._handler(target)
        if handler is None:
            if not view.owner_down_miss and self._waits(target):
                assert target is not None
                target.park(lambda up: self._read(hash_key, token, b64, op, cb, is_miss, miss))
                return
            self._read_down(view, target, cb, miss)
            return
        if view.prepare:  # a miss on the previous owner may have been written by a proxy already serving
            new = view.current.owner(point)
            new_handler = None if new is target else self._handler(new)
            if new_handler is None:
                op(handler, self._cb(target, cb))
                return

            def fallback(resp: Any) -> None:
                if is_miss(resp):
                    op(new_handler, self._cb(new, cb))
                else:
                    cb(resp)

            op(handler, self._cb(target, fallback))
            return
        prev = view.warm_owner(point, target)
        prev_handler = None if isinstance(prev, _NoTarget) else self._handler(prev)
        if prev_handler is None:
            self._send(target, handler, op, cb, MISS if view.owner_down_miss else AGAIN, miss)
            return

        warm_read(prev_handler, handler, token, b64, lambda done: op(handler, self._cb(target, done)), is_miss, cb)

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        def op(h: Handler, done: Callback) -> None:
            h.get(key, done, cas=cas, exptime=exptime, ttl=ttl)

        self._read(key, key, False, op, cb, _is_get_miss, META_MISS)

    # -- shortcuts: a plain text get or set -----------------------------------------------------

    def _shortcuts(self, handler: Handler) -> TextShortcuts:
        local = self.local
        if handler is local:
            return cast(TextShortcuts, local.shortcuts)
        return cast(TextShortcuts, handler)  # a plain forwarder (see ``shortcuts``)

    def get_text(self, key: bytes, cb: Callback) -> None:
        """This member's own key on a settled ring: straight to the local orca's shortcut. Any
        other: as any read, through the owner's plain forwarder (the owner's proxy answers ``mg``
        as memcached does), so a member that fails under it is waited for or missed as above."""
        point = key_point(key)
        view = self._view()
        if view.settled() and view.current.owner(point) is None:
            self._shortcuts(self.local).get_text(key, cb)
            return

        def op(h: Handler, done: Callback) -> None:
            self._shortcuts(h).get_text(key, done)

        self._read(key, key, False, op, cb, _is_get_miss, META_MISS, point=point)

    def set_text(self, key: bytes, request: bytes, cb: Callback) -> None:
        """The client's set as written: this member's own key on a settled ring straight to the
        local shortcut; any other as a plain set (both owners in prepare; sent again after a
        member failed under it, since running it twice changes nothing)."""
        point = key_point(key)
        view = self._view()
        if view.settled() and view.current.owner(point) is None:
            self._shortcuts(self.local).set_text(key, request, cb)
            return

        def op(h: Handler, done: Callback) -> None:
            self._shortcuts(h).set_text(key, request, done)

        self._write(key, key, False, op, cb, dependent=False, again=True, point=point)

    # -- writes -------------------------------------------------------------------------------

    def _write(self, hash_key: bytes, token: bytes, b64: bool, op: Op, cb: Callback, *,
               dependent: bool, delete: bool = False, again: bool = False,
               point: int | None = None) -> None:
        """OP on the key's owner. With a second owner (prepare, or warming up) the client hears
        the owner's answer once both owners are done:

        * prepare: OP runs on the previous owner, then the new owner's copy is deleted (a copy
          there could only be stale: proxies still on the old ring write and delete on the
          previous owner alone);
        * warming up: OP runs on the new owner, then the previous owner's copy is deleted; a
          DEPENDENT OP (its result depends on the current value) first pulls the previous copy
          over; a DELETE removes the previous copy first.

        Previous owner first, then new, for deletes: a warm-up fill that read the previous copy
        before it was deleted re-checks it after filling (see warmup.pull) and so cannot bring it
        back; a set lands on the new owner first, so a read in between never finds neither.

        AGAIN: running OP twice changes nothing (a plain set, a delete without CAS), so it may be
        sent again after its member failed with it on the wire."""
        view = self._view()
        if point is None:
            point = key_point(hash_key)
        owner, other = view.write_owners(point)
        handler = self._handler(owner)
        if handler is None:
            if self._waits(owner):
                assert owner is not None

                def resume(up: bool) -> None:
                    self._write(hash_key, token, b64, op, cb, dependent=dependent, delete=delete,
                                again=again)

                owner.park(resume)
                return
            STATS.ring_owner_down["error"] += 1
            cb(self._down_error(owner))
            return
        other_handler = None if isinstance(other, _NoTarget) else self._handler(other)
        if other_handler is None:
            self._send(owner, handler, op, cb, AGAIN if again else ONCE)
            return
        assert not isinstance(other, _NoTarget)
        def invalidate(then: Callable[[], None]) -> None:
            def done(resp: Any) -> None:
                if code_of(resp) == b"HD" or (resp is None):
                    STATS.ring_invalidations += 1
                then()

            if b64:
                other_handler.meta(b"md " + token + b" b", None, False, self._cb(other, done))
            else:
                other_handler.delete(token, self._cb(other, done))

        def owner_then_invalidate() -> None:
            def owner_done(resp: Any) -> None:
                invalidate(lambda: cb(resp))

            op(handler, self._cb(owner, owner_done))

        if delete:
            # The client's delete on both, previous owner first; it deleted something if either did.
            prev_side, new_side = ((owner, handler), (other, other_handler)) if view.prepare else (
                (other, other_handler), (owner, handler))

            def prev_deleted(first: Any) -> None:
                if _deleted(first):
                    STATS.ring_invalidations += 1

                def new_deleted(second: Any) -> None:
                    cb(second if _deleted(second) or not _deleted(first) else first)

                op(new_side[1], self._cb(new_side[0], new_deleted))

            op(prev_side[1], self._cb(prev_side[0], prev_deleted))
        elif view.prepare:
            owner_then_invalidate()  # the owner here is the previous one: deleted there first
        elif dependent:
            pull(other_handler, handler, token, b64, lambda moved: owner_then_invalidate())
        else:
            owner_then_invalidate()

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        def op(h: Handler, done: Callback) -> None:
            h.store(mode, key, flags, exptime, data, cas_unique, done)

        plain_set = mode == b"S"
        self._write(key, key, False, op, cb, dependent=not plain_set, again=plain_set)

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        def op(h: Handler, done: Callback) -> None:
            h.delete(key, done, base64=base64)

        self._write(decode_key(key, base64), key, base64, op, cb, dependent=False, delete=True,
                    again=True)

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        def op(h: Handler, done: Callback) -> None:
            h.touch(key, exptime, done)

        self._write(key, key, False, op, cb, dependent=True)

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        def op(h: Handler, done: Callback) -> None:
            h.arith(key, delta, incr, done)

        self._write(key, key, False, op, cb, dependent=True)

    # -- meta ---------------------------------------------------------------------------------

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        tokens = line.split()
        verb = tokens[0] if tokens else b""
        if len(tokens) < 2 or verb not in (b"mg", b"ms", b"md", b"ma", b"me"):
            self.local.meta(line, data, quiet, cb)  # mn, and whatever memcached answers with an error
            return
        token, flags = tokens[1], tokens[2:]
        b64 = b"b" in flags
        hash_key = decode_key(token, b64)

        def op(h: Handler, done: Callback) -> None:
            h.meta(line, data, quiet, done)

        if verb == b"mg" or verb == b"me":
            miss = None if quiet else meta_miss(flags, token)
            self._read(hash_key, token, b64, op, cb, _is_get_miss if verb == b"mg" else _never, miss)
        elif verb == b"md":
            self._write(hash_key, token, b64, op, cb, dependent=False, delete=True,
                        again=not any(f[:1] == b"C" for f in flags))
        elif verb == b"ms":
            plain_set = not any(f[:1] == b"C" or (f[:1] == b"M" and f[1:2] not in (b"S", b"s")) or f[:1] == b"I"
                                for f in flags)
            self._write(hash_key, token, b64, op, cb, dependent=not plain_set, again=plain_set)
        else:  # ma
            self._write(hash_key, token, b64, op, cb, dependent=True)

    # -- the rest -----------------------------------------------------------------------------

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        """flush_all reaches every member; stats, version and verbosity are answered locally."""
        if not line.startswith(b"flush_all"):
            self.local.text(line, multiline, cb)
            return
        view = self._view()
        targets: list[Target] = [t for t in view.current.targets if t is not None]
        results: list[Any] = []
        total = len(targets) + 1

        def one(resp: Any) -> None:
            results.append(resp)
            if len(results) == total:
                bad = [r for r in results if not (isinstance(r, MetaResponse) and r.raw == _OK)]
                cb(bad[0] if bad else results[0])

        self.local.text(line, multiline, one)
        for target in targets:
            handler = self._handler(target)
            if handler is None:
                one(self._down_error(target))
            else:
                handler.text(line, multiline, self._cb(target, one))

    def close(self) -> None:
        self.local.close()
        for _, handler in self.forwarders.values():
            close = getattr(handler, "close", None)  # a chunked forwarder answers what it still queues
            if close is not None:
                close()
        self.forwarders.clear()


def _is_get_miss(resp: Any) -> bool:
    """A get's miss: EN, or a quiet mg's swallowed miss (None)."""
    return resp is None or code_of(resp) == b"EN"


def _deleted(resp: Any) -> bool:
    """A delete that removed something: HD, or a quiet md's swallowed HD (None)."""
    return resp is None or code_of(resp) == b"HD"


def _never(resp: Any) -> bool:
    return False
