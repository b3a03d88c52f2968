"""The text/meta session: parse, hand each request to the orca, render memcached's answers.

Text commands are answered from the backend's meta answers (``VA``→``VALUE``, ``HD``→
``STORED``...), except a plain ``set``, which memcached is sent as written (see the plain
handler). Meta commands are forwarded as written and their answers passed back verbatim, so meta
clients see memcached's own bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Final

from ..backends.errors import BackendError
from ..handlers.base import TextShortcuts
from ..metrics.stats import STATS, clock
from ..orcas.base import Orca
from ..protocol.meta import STORE_RESULTS, MetaResponse, code_of
from ..protocol.requests import (
    Arith,
    Close,
    Delete,
    Get,
    Meta,
    Passthrough,
    Quit,
    Reply,
    Request,
    Store,
    TooLarge,
    Touch,
)
from ..protocol.text import TOO_LARGE, TextParser
from ..protocol.text_answers import (
    ARITH_ANSWERS,
    DELETE_ANSWERS,
    END,
    META_RESULTS,
    NO_TABLE,
    STORE_ANSWERS,
    TOUCH_ANSWERS,
    AnswerTable,
    value_line,
)
from .connection import MAX_IN_FLIGHT, ClientConnection, Slot

L1_HIT: Final = ("l1", "hit")
L1_MISS: Final = ("l1", "miss")
# Prebuilt keys of STATS.requests for the shortcuts' answers: no tuple is built per request.
GET_HIT: Final = ("text", "get", "hit")
SET_COUNTERS: Final = {line: ("text", "set", result) for line, result in STORE_RESULTS.items()}


def error_answer(resp: MetaResponse | BackendError) -> tuple[bytes, str]:
    """A backend error or an unexpected backend line, as the client should hear it."""
    if isinstance(resp, BackendError):
        STATS.errors["server_error"] += 1
        return resp.line, "server_error"
    if resp.code == b"CLIENT_ERROR":
        STATS.errors["client_error"] += 1
        return resp.raw, "client_error"
    STATS.errors["server_error"] += 1
    return resp.raw, "server_error"


class Answer(Slot):
    """One request's place in the answer queue *and* its backend callback.

    A bound method of this object is what the backend calls back: one small object per request
    instead of two closures and a cell per captured variable (allocation is a large part of a
    request's cost in Python). A fault while rendering closes this client only; the callback runs
    inside a shared backend connection's read, which must never see the exception.
    """

    __slots__ = ("req", "session", "started", "table")

    def __init__(self, session: TextSession, req: Any, started: float, table: AnswerTable = NO_TABLE) -> None:
        self.data: bytes | None = None
        self.close_after = False
        self.session, self.started, self.table = session, started, table
        self.req = req  # a Request: a Get for one_get, one with ``noreply`` for by_table
        session.conn.enqueue(self)

    def one_get(self, resp: MetaResponse | BackendError) -> None:
        """A one-key get answered: the hot path."""
        session = self.session
        try:
            if isinstance(resp, MetaResponse) and resp.code == b"VA":
                req = self.req
                if session.count_lookups:
                    STATS.lookups[L1_HIT] += 1
                session.finish(self, req.command, "hit", self.started, value_line(req.keys[0], resp, req.cas, END))
            else:
                session.render_get(self, self.req, (resp,), self.started)
        except Exception:
            session.conn.fault()

    def by_table(self, resp: MetaResponse | BackendError) -> None:
        """An answer looked up in ``table`` (meta code → text answer, metric result)."""
        session = self.session
        try:
            answer = self.table.get(code_of(resp))
            data, result = answer if answer is not None else error_answer(resp)
            req = self.req
            session.finish(self, req.command, result, self.started, b"" if req.noreply else data)
        except Exception:
            session.conn.fault()


class Shortcut(Slot):
    """The slot and callback of a request served by the orca's shortcuts (``get_text``,
    ``set_text``): no request object, just the session, when it was read, and the key if needed."""

    __slots__ = ("key", "session", "started")

    def __init__(self, session: TextSession, started: float, key: bytes = b"") -> None:
        self.data: bytes | None = None
        self.close_after = False
        self.session, self.started, self.key = session, started, key
        session.conn.enqueue(self)


class OneGet(Shortcut):
    """A plain one-key ``get``, what most clients send most: a hit arrives as the bytes of the text
    answer after ``VALUE <key> `` (see :func:`~cacheproxy.protocol.meta.read_text_value`)."""

    __slots__ = ()

    def done(self, resp: bytes | MetaResponse | BackendError) -> None:
        session = self.session
        try:
            if isinstance(resp, bytes):
                if session.count_lookups:
                    STATS.lookups[L1_HIT] += 1
                session.conn.answer(self, GET_HIT, self.started, b"VALUE %b %b" % (self.key, resp))
            else:
                session.render_get(self, Get("get", [self.key], False), (resp,), self.started)
        except Exception:
            session.conn.fault()


class ForwardedSet(Shortcut):
    """A plain ``set`` forwarded to memcached as the client wrote it (see
    :meth:`~cacheproxy.handlers.base.TextShortcuts.set_text`): memcached's ``STORED`` (or
    ``NOT_STORED``...) line is the client's answer as it comes. No request object, no command built."""

    __slots__ = ()

    def done(self, resp: bytes | MetaResponse | BackendError) -> None:
        session = self.session
        try:
            if isinstance(resp, bytes):
                session.conn.answer(self, SET_COUNTERS[resp], self.started, resp)
            else:
                data, result = error_answer(resp)
                session.finish(self, "set", result, self.started, data)
        except Exception:
            session.conn.fault()


class TextSession:
    """Serves one text/meta client connection."""

    __slots__ = ("backlog", "conn", "count_lookups", "orca", "parser", "shortcuts")
    dispatch: ClassVar[dict[type, Callable]]  # request type → unbound method, filled in below the class

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        orca = conn.orca
        assert orca is not None  # the connection picks its orca before its session
        self.orca: Orca = orca
        self.parser = TextParser(conn.context.config.client_value_limit)
        # An orca that does not count hits and misses per level (L1Only) leaves it to the server.
        self.count_lookups = not orca.counts_lookups
        # The orca's shortcuts (get_text, set_text), when it offers them, take a plain get and a
        # plain set; other orcas serve them like any request.
        self.shortcuts: TextShortcuts | None = orca.shortcuts
        self.backlog: deque[Request] | None = None  # parsed, waiting for the client to read answers

    def feed(self, data: bytes, now: float) -> bool:
        """Serve the requests in DATA, read at NOW. True when DATA was one whole plain get or set
        (so nothing is held and nothing waits)."""
        conn, parser = self.conn, self.parser
        if not self.backlog and conn.in_flight() < MAX_IN_FLIGHT and not conn.closing:
            key = parser.single_get(data)
            shortcuts = self.shortcuts
            if key is not None:
                if shortcuts is not None:
                    shortcuts.get_text(key, OneGet(self, now, key).done)
                else:
                    self.get(Get("get", [key], False), now)
                return True
            if shortcuts is not None:
                key = parser.single_set(data)
                if key is not None:
                    shortcuts.set_text(key, data, ForwardedSet(self, now).done)
                    return True
        requests = parser.feed(data)
        if not requests:
            return False
        if self.backlog or len(requests) + conn.in_flight() > MAX_IN_FLIGHT:
            if self.backlog is None:
                self.backlog = deque()  # made only for clients that outrun their answers
            self.backlog.extend(requests)
            self.run_backlog()
            return False
        dispatch = self.dispatch
        for request in requests:
            if conn.closing:
                break
            dispatch[type(request)](self, request, now)
        return False

    def run_backlog(self) -> None:
        """Serve waiting requests while the client keeps up with its answers."""
        backlog, conn, dispatch = self.backlog, self.conn, self.dispatch
        now = clock()
        while backlog and conn.may_dispatch() and not conn.closing:
            request = backlog.popleft()
            dispatch[type(request)](self, request, now)

    def finish(self, slot: Slot, command: str, result: str, started: float, data: bytes,
               protocol: str = "text") -> None:
        """Answer a request (the shortcuts call ``conn.answer`` with a prebuilt counter key)."""
        self.conn.answer(slot, (protocol, command, result), started, data)

    def guarded(self, fn: Callable[[MetaResponse | BackendError], None]) -> Callable:
        """Backend callbacks run inside a (possibly shared) backend connection's read: a fault
        in rendering must close this client only, never propagate into the backend."""
        conn = self.conn

        def run(resp: MetaResponse | BackendError) -> None:
            try:
                fn(resp)
            except Exception:
                conn.fault()

        return run

    # -- gets ------------------------------------------------------------------------------

    def get(self, req: Get, started: float) -> None:
        keys = req.keys
        if len(keys) == 1:  # the common case, without the gathering below
            if req.exptime is None and not req.cas:
                self.orca.get(keys[0], Answer(self, req, started).one_get)
            else:
                self.orca.get(keys[0], Answer(self, req, started).one_get, cas=req.cas, exptime=req.exptime)
            return
        slot, cas = self.conn.slot(), req.cas
        if not keys:
            self.finish(slot, req.command, "miss", started, END)
            return
        results: list = [None] * len(keys)
        remaining = [len(keys)]

        def collect(index: int) -> Callable:
            def done(resp: MetaResponse | BackendError) -> None:
                results[index] = resp
                remaining[0] -= 1
                if remaining[0] == 0:
                    self.render_get(slot, req, results, started)

            return self.guarded(done)

        for i, key in enumerate(keys):
            self.orca.get(key, collect(i), cas=cas, exptime=req.exptime)

    def render_get(self, slot: Slot, req: Get, results, started: float) -> None:
        parts, hit, count = [], False, self.count_lookups
        for key, resp in zip(req.keys, results, strict=True):
            code = code_of(resp)
            if code == b"VA":
                parts.append(value_line(key, resp, req.cas))
                hit = True
                if count:
                    STATS.lookups[L1_HIT] += 1
            elif code == b"EN":
                if count:
                    STATS.lookups[L1_MISS] += 1
            else:
                data, result = error_answer(resp)
                self.finish(slot, req.command, result, started, data)
                return
        parts.append(END)
        self.finish(slot, req.command, "hit" if hit else "miss", started, b"".join(parts))

    # -- storage and friends ---------------------------------------------------------------

    def store(self, req: Store, started: float) -> None:
        cb = Answer(self, req, started, STORE_ANSWERS).by_table
        self.orca.store(req.mode, req.key, req.flags, req.exptime, req.data, req.cas_unique, cb)

    def delete(self, req: Delete, started: float) -> None:
        self.orca.delete(req.key, Answer(self, req, started, DELETE_ANSWERS).by_table)

    def touch(self, req: Touch, started: float) -> None:
        self.orca.touch(req.key, req.exptime, Answer(self, req, started, TOUCH_ANSWERS).by_table)

    def arith(self, req: Arith, started: float) -> None:
        slot = self.conn.slot()

        def done(resp: MetaResponse | BackendError) -> None:
            if isinstance(resp, MetaResponse) and resp.code == b"VA":
                data, result = resp.value + b"\r\n", "ok"  # type: ignore[operator]
            else:
                answer = ARITH_ANSWERS.get(code_of(resp))
                data, result = answer if answer is not None else error_answer(resp)
            self.finish(slot, req.command, result, started, b"" if req.noreply else data)

        self.orca.arith(req.key, req.delta, req.incr, self.guarded(done))

    # -- meta and passthrough ---------------------------------------------------------------

    def meta(self, req: Meta, started: float) -> None:
        slot = self.conn.slot()

        def done(resp: MetaResponse | BackendError | None) -> None:
            if resp is None:  # quiet mode swallowed the answer
                data, result = b"", "ok"
            else:
                known = META_RESULTS.get(code_of(resp))
                if isinstance(resp, MetaResponse) and known is not None:
                    data, result = resp.raw, known
                else:
                    data, result = error_answer(resp)
            self.finish(slot, req.command, result, started, data, protocol="meta")

        self.orca.meta(req.line, req.data, req.quiet, self.guarded(done))

    def passthrough(self, req: Passthrough, started: float) -> None:
        slot = self.conn.slot()

        def done(resp: MetaResponse | BackendError) -> None:
            if isinstance(resp, BackendError):
                data, result = error_answer(resp)
            else:
                data, result = resp.raw, "ok"
            self.finish(slot, req.command, result, started, b"" if req.noreply else data)

        self.orca.text(req.line, req.command == "stats", self.guarded(done))

    # -- answered here -----------------------------------------------------------------------

    def local_reply(self, req: Reply, started: float) -> None:
        if req.data.startswith(b"ERROR"):
            result, kind = "error", "protocol"
        else:
            result = kind = "client_error"
        STATS.errors[kind] += 1
        self.finish(self.conn.slot(), req.command, result, started, req.data)

    def too_large(self, req: TooLarge, started: float) -> None:
        """memcached answers, swallows the data, and (for set/ms) drops the old value."""
        STATS.errors["too_large"] += 1
        slot = self.conn.slot()
        if req.unlink:
            def unlinked(resp: MetaResponse | BackendError) -> None:
                self.finish(slot, req.command, "server_error", started, b"" if req.noreply else TOO_LARGE)

            self.orca.delete(req.key, self.guarded(unlinked), base64=req.base64)
        else:
            self.finish(slot, req.command, "server_error", started, b"" if req.noreply else TOO_LARGE)

    def quit(self, req: Quit, started: float) -> None:
        self.conn.close_after_answers()

    def hang_up(self, req: Close, started: float) -> None:
        STATS.errors["protocol"] += 1
        self.conn.close_after_answers()


TextSession.dispatch = {
    Get: TextSession.get, Store: TextSession.store, Delete: TextSession.delete, Touch: TextSession.touch,
    Arith: TextSession.arith, Meta: TextSession.meta, Passthrough: TextSession.passthrough,
    Reply: TextSession.local_reply, TooLarge: TextSession.too_large, Quit: TextSession.quit,
    Close: TextSession.hang_up,
}
