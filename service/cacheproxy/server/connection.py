"""One protocol object per client connection: the read-eval-respond loop.

Rend runs a goroutine per client; here each client is an :class:`asyncio.Protocol`, which costs
no task and no stream objects. Requests of one connection may finish out of order (a get that
misses L1 waits for L2 while the next set does not), so every request takes a *slot* in an
ordered queue and answers leave only from the head of that queue, as memcached's do.

Any unexpected exception while handling this connection is logged with its traceback, counted,
and closes this connection and its own backend connections; nothing else is touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from ..backends import outbox
from ..config import Config
from ..metrics.stats import STATS, clock
from ..orcas.base import Orca

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 128  # unanswered requests of one client before its next ones wait


class ServerContext(Protocol):
    """What a client connection needs from the process around it (``app.Runtime`` offers it)."""

    loop: asyncio.AbstractEventLoop
    clients: set[Any]  # the open client connections (for timeouts and the drain)

    @property
    def config(self) -> Config:
        """The current config: read at use, so that a reload swaps one object."""

    def new_orca(self) -> Orca: ...


class Session(Protocol):
    """A protocol session (text/meta or binary) serving one client connection."""

    @property
    def backlog(self) -> Any:
        """Requests parsed and waiting for the client to read its answers (falsy when none)."""

    @property
    def parser(self) -> Any:
        """Has ``buffered``: bytes of an unfinished request are held."""

    def feed(self, data: bytes, now: float) -> bool: ...

    def run_backlog(self) -> None: ...


# (connection, first byte) → its session, which gives the connection its orca when it needs one
SessionFactory = Callable[["ClientConnection", int], Session]


class DropLog:
    """Logs (at most once per ``interval`` seconds, with counts of what it held back) that clients
    went away with requests the proxy had read but not answered: parsed and never sent to a
    backend (``unsent``), or sent and not yet answered (their answers are discarded)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.next_at = 0.0
        self.clients = self.unsent = self.unanswered = 0

    def report(self, unsent: int, unanswered: int) -> None:
        self.clients += 1
        self.unsent += unsent
        self.unanswered += unanswered
        now = clock()
        if now < self.next_at:
            return
        self.next_at = now + self.interval
        log.warning("%d client(s) disconnected with requests not answered: %d dropped before reaching a "
                    "backend, %d answers discarded (the client gave up, e.g. its timeout expired)",
                    self.clients, self.unsent, self.unanswered)
        self.clients = self.unsent = self.unanswered = 0


DROPS: Final = DropLog()


class Slot:
    """A place in the answer queue; ``data`` is set once when the answer is ready."""

    __slots__ = ("close_after", "data")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.close_after = False


class ClientConnection(asyncio.Protocol):
    __slots__ = ("_out", "_reading_paused", "_serving_backlog", "_write_scheduled", "_writing_paused", "closing",
                 "context", "draining", "ended", "head", "last_activity", "loop", "orca", "partial_since", "rejected",
                 "session", "slots", "start_session", "transport")

    def __init__(self, context: ServerContext, start_session: SessionFactory) -> None:
        self.context = context
        self.start_session = start_session  # picks text/meta or binary by the first byte (server/sessions.py)
        self.loop = context.loop
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.orca: Orca | None = None
        # The oldest unanswered request, then the later ones in order. Most clients have one request
        # in flight at a time, and it comes and goes without touching a list, so the lists are made
        # only for a client that pipelines (and kept: a list emptied and refilled frees and
        # reallocates its storage every time). Lists, not deques: an empty deque costs ~600 bytes;
        # even two empty lists cost 112 bytes per connection (10,000 idle clients = 1.1 MB).
        self.head: Slot | None = None
        self.slots: list[Slot] | None = None  # the requests after head
        self._out: list[bytes] | None = None  # answers ready, waiting for the others of a batch
        self._write_scheduled = False
        self._reading_paused = False
        self._writing_paused = False
        self._serving_backlog = False  # run_backlog is on the stack (see _maybe_resume_reading)
        self.closing = False
        self.draining = False  # close as soon as an answer leaves nothing in flight (see drain)
        self.ended = False  # the client shut down its sending side (see eof_received)
        self.rejected = False
        self.last_activity = 0.0
        self.partial_since: float | None = None  # when an unfinished request started to arrive

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        STATS.client_connections_total += 1
        context = self.context
        if len(context.clients) >= context.config.max_connections:
            self.rejected = self.closing = True  # over the limit: closed at accept, never served
            STATS.errors["rejected"] += 1
            self.transport.abort()
            return
        STATS.client_connections += 1
        self.last_activity = clock()
        context.clients.add(self)

    def data_received(self, data: bytes) -> None:
        STATS.bytes_received += len(data)
        now = self.last_activity = clock()
        try:
            session = self.session
            if session is None:
                session = self.session = self.start_session(self, data[0])
            served_whole = session.feed(data, now)
            if outbox.DIRTY:
                outbox.flush()  # backend requests and local answers leave in one write each
        except Exception:
            self.fault()
            return
        if served_whole:
            return  # one whole plain get or set: nothing held, nothing waiting
        if session.parser.buffered:
            if self.partial_since is None:
                self.partial_since = now
        elif self.partial_since is not None:
            self.partial_since = None
        if session.backlog and not self._reading_paused and self.transport is not None:
            self._reading_paused = True  # requests wait parsed; read no more until they are sent
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        """The client shut down its sending side (``printf 'get k\\r\\n' | nc -N``). memcached
        answers every whole request it read before the end, then closes; so does this. A request
        cut off by the end is never answered. Over TLS the end is the client's close_notify or its
        FIN (listener.tls)."""
        self.ended = self.draining = True
        self.close_if_idle()
        return True  # keep the transport: this connection closes itself after its last answer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.rejected:
            return
        STATS.client_connections -= 1
        self.closing = True
        self.context.clients.discard(self)
        session = self.session
        if session is not None and (session.backlog or self.head is not None):
            DROPS.report(len(session.backlog) if session.backlog else 0, self.in_flight())
        if self.orca is not None:
            self.orca.close()
            self.orca = None
        self.transport = None
        self.session = None  # breaks the connection <-> session cycle: freed without the GC

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._maybe_resume_reading()

    # -- ordered answers -------------------------------------------------------------------

    def slot(self) -> Slot:
        slot = Slot()
        self.enqueue(slot)
        return slot

    def enqueue(self, slot: Slot) -> None:
        """SLOT is the newest request's place in the answer queue."""
        if self.head is None:
            self.head = slot
        elif self.slots is None:
            self.slots = [slot]
        else:
            self.slots.append(slot)

    def in_flight(self) -> int:
        """Requests not yet answered."""
        if self.head is None:
            return 0
        slots = self.slots
        return len(slots) + 1 if slots is not None else 1

    def answer(self, slot: Slot, counter: tuple[str, str, str], started: float, data: bytes) -> None:
        """A request read at STARTED is answered with DATA: count it under COUNTER (protocol,
        command, result), time it, and fill its SLOT."""
        STATS.requests[counter] += 1
        STATS.latency[counter[1]].observe(clock() - started)
        self.complete(slot, data)

    def complete(self, slot: Slot, data: bytes) -> None:
        """Fill SLOT; send every answer now ready at the head of the queue."""
        slot.data = data
        if slot is not self.head:
            return  # an earlier request is unanswered: this answer waits for it
        slots, out = self.slots, self._out
        if not slots and not out and not slot.close_after:
            # The only request in flight (the common case) leaves at once, through no list.
            self.head = None
            if data and self.transport is not None:
                STATS.bytes_sent += len(data)
                self.transport.write(data)
        else:
            if out is None:
                out = self._out = []
            head: Slot | None = slot
            while head is not None and head.data is not None:
                if head.data:
                    out.append(head.data)
                closing = head.close_after
                head = self.head = slots.pop(0) if slots else None
                if closing:
                    self.flush_out()
                    self.close()
                    return
            if out:
                if head is None:  # nothing else is awaited, so nothing can join these answers: they leave now
                    self.flush_out()
                elif not self._write_scheduled:
                    self._write_scheduled = True
                    outbox.mark(self)
        if self.draining and self.head is None and self.close_if_idle():
            return
        if self._reading_paused:
            self._maybe_resume_reading()

    def flush_out(self) -> None:
        self._write_scheduled = False
        out = self._out
        if not out or self.transport is None:
            if out:
                out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        STATS.bytes_sent += len(data)
        self.transport.write(data)

    def may_dispatch(self) -> bool:
        """Backpressure: a client that does not read its answers stops getting requests served
        (they wait parsed, in order) once MAX_IN_FLIGHT are unanswered or its socket is full, so
        its memory stays bounded by MAX_IN_FLIGHT answers."""
        return self.in_flight() < MAX_IN_FLIGHT and not self._writing_paused

    def _maybe_resume_reading(self) -> None:
        """Serve the backlog, then read again, once the client has caught up with its answers.

        A request the backlog serves may be answered at once (an error, ``version``), and that
        answer comes back here: the loop already running goes on with the next request instead of
        a nested one starting (a nested run per answer grew the stack with the backlog, and a client
        pipelining a few thousand such lines behind slower requests hit the recursion limit)."""
        if not self._reading_paused or self.transport is None or self.closing or self._serving_backlog:
            return
        session = self.session
        if session is not None and session.backlog:
            if not self.may_dispatch() or self.in_flight() > MAX_IN_FLIGHT // 2:
                return
            self._serving_backlog = True
            try:
                session.run_backlog()
                outbox.flush()
            except Exception:
                self.fault()
                return
            finally:
                self._serving_backlog = False
            if session.backlog:
                return
        if not self._writing_paused and self.in_flight() <= MAX_IN_FLIGHT // 2:
            self._reading_paused = False
            if not self.ended:  # nothing more will come: reading again would only read the end again
                self.transport.resume_reading()

    # -- endings ---------------------------------------------------------------------------

    def close_after_answers(self) -> None:
        """``quit``: everything before it is answered, then the connection closes."""
        slot = self.slot()
        slot.close_after = True
        self.complete(slot, b"")

    def drain(self) -> None:
        """The proxy is stopping: close right after the answer that leaves nothing in flight. A
        client that waits for each answer before its next request reads the close with that answer,
        so none of its requests is on the wire when the connection ends (see app.Runtime.drain)."""
        self.draining = True

    def close_if_idle(self) -> bool:
        """Close if nothing is in flight, half-read or waiting to be dispatched; True if closed."""
        session = self.session
        if self.head is not None or (session is not None and (
                session.backlog or (session.parser.buffered and not self.ended))):
            return False
        self.close()
        return True

    def close(self) -> None:
        if self.transport is not None and not self.closing:
            self.closing = True
            self.flush_out()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()

    def fault(self) -> None:
        """An unexpected exception: log it, count it, close only this connection."""
        STATS.connection_faults += 1
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.exception("fault on client connection %s; closing it", peer)
        self.abort()
