"""A pipelined meta-protocol connection to one memcached.

memcached answers the requests of one connection in the order it received them, so a
connection keeps a FIFO of (answer shape, callback, time sent) and cuts the incoming bytes
into answers by those shapes. Writes made during one event-loop turn are coalesced into one
``write`` call. A connection that breaks fails its in-flight requests with
:class:`BackendError` at once (clients get ``SERVER_ERROR``, never a hang), and reconnects on
the next request after a jittered, growing back-off. With an ``ssl_context`` (a ring peer's
port) the connection speaks TLS; a failed handshake counts as a failed connect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import ssl
from collections.abc import Callable
from typing import Final, Protocol, cast

from ..metrics.stats import STATS, clock
from ..protocol.meta import READERS, TEXT_STORE, TEXT_VALUE, MetaResponse, read_text_store, read_text_value
from . import outbox
from .address import Address
from .errors import BackendError

log = logging.getLogger(__name__)

Callback = Callable[[MetaResponse | BackendError], None]


class Retrier(Protocol):
    """Who re-sends an idempotent read elsewhere when its connection breaks (a pool's lane)."""

    def retry(self, payload: bytes, shape: int, callback: Callback) -> None: ...


# A request in flight: (answer shape, callback, its payload, who retries it or None). The payload is
# kept until the answer comes, whether or not it is retried: it is only a reference. Typed to the item,
# so that compiled code reads the fields without generic unpacking.
Pending = tuple[int, Callback, bytes, Retrier | None]


IDLE: Final = 0
CONNECTING: Final = 1
OPEN: Final = 2
DOWN: Final = 3
CLOSED: Final = 4
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0


class BackendConnection(asyncio.Protocol):
    """One backend connection, shared by whoever holds it; see the module docstring."""

    __slots__ = ("_answered", "_backoff", "_buf", "_connect_task", "_flush_scheduled", "_out", "_retry_at", "address",
                 "busy_since", "count_batches", "flush_delay", "last_progress", "loop", "max_batch", "name", "on_close",
                 "pending", "ssl_context", "state", "timeout", "transport", "watch", "watched")

    def __init__(self, address: Address, name: str = "l1", timeout: float = 2.0, *, max_batch: int = 0,
                 flush_delay: float = 0.0, count_batches: bool = False,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.address, self.name, self.timeout = address, name, timeout
        self.ssl_context = ssl_context  # TLS to the other end (a ring peer's port); None: plain
        self.max_batch, self.flush_delay, self.count_batches = max_batch, flush_delay, count_batches
        self.loop = asyncio.get_event_loop()
        # A list, not a deque: an empty deque costs ~600 bytes, one per client in L1Only; answered
        # entries are cut off once per read, not popped one by one.
        self.pending: list[Pending] = []
        self.state = IDLE
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._buf = b""
        self._answered = 0  # entries of ``pending`` answered so far in the read being handled
        self._retry_at = 0.0
        self._backoff = 0.0
        self.last_progress = 0.0
        self.busy_since = 0.0  # when ``pending`` last became non-empty
        self._connect_task: asyncio.Task | None = None
        self.on_close: Callable[[BackendConnection], None] | None = None
        self.watch: set[BackendConnection] | None = None  # the sweeper's busy set, once tracked
        self.watched = False  # in ``watch`` now: a flag test per request instead of a set insertion

    # -- sending ---------------------------------------------------------------------------

    def send(self, payload: bytes, shape: int, callback: Callback, retry: Retrier | None = None) -> None:
        """Queue PAYLOAD; CALLBACK gets the answer (of SHAPE) or a BackendError, exactly once.

        RETRY, for idempotent reads, is called as ``retry.retry(payload, shape, callback)`` instead
        of failing the callback when this connection breaks with the request in flight."""
        state = self.state
        if state != OPEN and state != CONNECTING:
            if state == CLOSED:
                callback(BackendError(f"backend {self.name} connection closed", written=False))
                return
            if state == DOWN and clock() < self._retry_at:
                callback(BackendError(f"backend {self.name} unavailable", written=False))
                return
            self._start_connect()
        pending = self.pending
        if not pending:
            self.busy_since = clock()  # the oldest request in flight was sent now
            if self.watch is not None and not self.watched:
                self.watched = True
                self.watch.add(self)  # the sweeper times out requests of busy connections only
        pending.append((shape, callback, payload, retry))
        out = self._out
        out.append(payload)
        if self.transport is None:
            return
        if self.max_batch and len(out) >= self.max_batch:
            self.flush_out()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            if self.flush_delay:
                self.loop.call_later(self.flush_delay, self.flush_out)
            elif self.count_batches:
                # A pooled connection collects the requests of every client read this turn.
                self.loop.call_soon(self.flush_out)
            else:
                # A client's own connection writes as soon as that client's read is handled.
                outbox.mark(self)

    def send_read(self, payload: bytes, shape: int, callback: Callback) -> None:
        """A read: a lone connection does not retry reads elsewhere (a pool's Lane does)."""
        self.send(payload, shape, callback)

    def flush_out(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.transport is not None:
            if self.count_batches:
                STATS.batch_sizes[self.name].observe(len(out))
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            self.transport.write(data)

    # -- connecting ------------------------------------------------------------------------

    def _start_connect(self) -> None:
        self.state = CONNECTING
        self._connect_task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        addr = self.address
        try:
            if addr.is_unix:
                await self.loop.create_unix_connection(lambda: self, addr.path)
            else:
                await self.loop.create_connection(lambda: self, addr.host, addr.port, ssl=self.ssl_context)
        except OSError as exc:
            STATS.backend_errors[(self.name, "connect")] += 1
            self._fail(f"backend {self.name} unavailable: {exc.strerror or exc}")
        except asyncio.CancelledError:
            raise  # whoever cancelled (a timeout, close()) has already failed the requests
        finally:
            if self._connect_task is asyncio.current_task():
                self._connect_task = None  # a finished task and its coroutine: ~0.4 KB per connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is not None or self.state == CLOSED:  # never two transports at once
            transport.set_protocol(_DETACHED)
            cast(asyncio.Transport, transport).abort()
            return
        self.transport = cast(asyncio.Transport, transport)
        if self._backoff:
            STATS.backend_reconnects[self.name] += 1
        self._backoff = 0.0
        self.state = OPEN
        STATS.backend_connections[self.name] += 1
        self.flush_out()

    # -- receiving -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_progress = clock()
        buf = self._buf + data if self._buf else data
        pos, pending, answered = 0, self.pending, 0
        try:
            for shape, callback, _, _ in pending:
                # The two hot shapes by name (compiled, a direct call), the rest through the table.
                if shape == TEXT_VALUE:
                    parsed: tuple | None = read_text_value(buf, pos)
                elif shape == TEXT_STORE:
                    parsed = read_text_store(buf, pos)
                else:
                    parsed = READERS[shape](buf, pos)
                if parsed is None:
                    break
                response, pos = parsed
                answered = self._answered = answered + 1  # (for _fail, should a callback cause one)
                callback(response)
        finally:
            self._answered = 0
            if pending is self.pending:  # else a callback failed the connection: the list is gone
                del pending[:answered]
        outbox.flush()  # the answers just completed leave now, one write per client
        if pending is not self.pending:
            return
        if pos < len(buf):
            if not pending:
                STATS.backend_errors[(self.name, "protocol")] += 1
                self.abort("unexpected bytes from backend")
                return
            self._buf = buf[pos:]
        else:
            self._buf = b""

    # -- failing and closing ---------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            STATS.backend_connections[self.name] -= 1
        self.transport = None
        if self.state != CLOSED:
            if self.pending:
                STATS.backend_errors[(self.name, "closed")] += 1
            self._fail(f"backend {self.name} connection lost")

    def _fail(self, reason: str) -> None:
        """Answer everything in flight with an error and back off before reconnecting."""
        task = self._connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            # A connect still hanging (a stopped backend's full accept queue) must not complete
            # later beside the one the next request starts: one transport per connection, ever.
            task.cancel()
        if self.state != CLOSED:
            self.state = DOWN
            self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
            self._retry_at = clock() + self._backoff * random.uniform(0.5, 1.0)
        self._buf = b""
        # The requests still in ``_out`` (the last ones in flight) never left: the backend cannot
        # have run them, and their error says so.
        unwritten = len(self._out)
        self._out.clear()
        error = BackendError(reason)
        pending, self.pending = self.pending[self._answered:], []  # (answered ones are in front)
        first_unwritten = len(pending) - unwritten
        for i, (shape, callback, payload, retry) in enumerate(pending):
            if retry is not None:
                retry.retry(payload, shape, callback)
            elif i >= first_unwritten:
                callback(BackendError(reason, written=False))
            else:
                callback(error)

    def _detach(self) -> None:
        """Let go of the transport now; its last events go to a protocol that ignores them, so a
        late ``connection_lost`` can never be mistaken for one of the next transport's."""
        transport = self.transport
        if transport is not None:
            self.transport = None
            STATS.backend_connections[self.name] -= 1
            transport.set_protocol(_DETACHED)
            transport.abort()

    def abort(self, reason: str) -> None:
        """Drop the connection now (timeout, garbage): in-flight requests get SERVER_ERROR."""
        self._detach()
        self._fail(reason)

    def close(self) -> None:
        """Close for good (its client went away)."""
        self.state = CLOSED
        self._detach()
        self._fail(f"backend {self.name} connection closed")
        if self.on_close is not None:
            self.on_close(self)

    def _answer_waiting(self) -> bool:
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        try:
            return bool(select.select([sock.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def check_timeout(self, now: float) -> None:
        """Called by the sweeper: abort when the oldest request has waited too long and the
        backend has sent nothing meanwhile (a busy event loop is not a dead backend)."""
        # Connecting under a burst of thousands of new clients can take a few SYN retries.
        limit = self.timeout * 3 if self.state == CONNECTING else self.timeout
        # Answers come in order, so "in flight since > limit and no answer for > limit" is "the oldest
        # request has waited > limit" without stamping every request with the time.
        if self.pending and now - self.busy_since > limit and now - self.last_progress > limit:
            if self._answer_waiting():
                return  # the backend did answer; a busy event loop has not read it yet
            STATS.backend_errors[(self.name, "timeout")] += 1
            self.abort(f"backend {self.name} timeout")


class _Detached(asyncio.Protocol):
    """Receives the last events of transports a BackendConnection has already let go of."""


_DETACHED = _Detached()
