"""A small pool of pipelined backend connections shared by many clients (Rend's batched mode).

Thousands of client connections funnel into a few backend connections: memcached then reads
many requests per system call and the proxy writes many per ``write``. The pool starts with one
connection and grows (up to ``size``) whenever every connection already has ``grow_at``
requests in flight. A broken connection fails its in-flight requests with ``SERVER_ERROR`` and
reconnects on its own (see :class:`BackendConnection`); a get that fails that way is retried a
bounded number of times on another connection first (see :meth:`send_read`).
"""

from __future__ import annotations

import ssl

from ..metrics.stats import STATS
from .address import Address
from .connection import CLOSED, CONNECTING, IDLE, OPEN, BackendConnection, Callback
from .errors import BackendError
from .sweeper import track


class BackendPool:
    def __init__(self, address: Address, name: str, *, size: int = 8, timeout: float = 2.0,
                 max_batch: int = 64, flush_us: int = 0, grow_at: int = 32, read_retries: int = 2,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.address, self.name, self.size, self.timeout = address, name, max(1, size), timeout
        self.max_batch, self.flush_delay, self.grow_at = max_batch, flush_us / 1e6, grow_at
        self.read_retries = read_retries
        self.ssl_context = ssl_context  # every connection of the pool speaks TLS with it (ring peers)
        self.conns: list[BackendConnection] = []
        self._next = 0

    def _new(self) -> BackendConnection:
        conn = track(BackendConnection(self.address, self.name, self.timeout, max_batch=self.max_batch,
                                       flush_delay=self.flush_delay, count_batches=True,
                                       ssl_context=self.ssl_context))
        self.conns.append(conn)
        return conn

    def pick(self) -> BackendConnection:
        conns = self.conns
        if not conns:
            return self._new()
        best: BackendConnection | None = None
        for _ in range(len(conns)):
            self._next = (self._next + 1) % len(conns)
            conn = conns[self._next]
            # A connection still connecting takes requests too (they leave once it is open): else a
            # burst of new clients at start-up would open every connection of the pool, and few
            # clients spread over many connections batch nothing.
            usable = conn.state == OPEN or conn.state == CONNECTING or conn.state == IDLE
            if usable and len(conn.pending) < self.grow_at:
                return conn
            if best is None or (usable and len(conn.pending) < len(best.pending)):
                best = conn
        if len(conns) < self.size:
            return self._new()
        assert best is not None  # conns is not empty: the loop ran
        return best

    def lane(self) -> Lane:
        """A client's own path through the pool: one connection, so its requests stay in order."""
        return Lane(self, self.pick())

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()


class Lane:
    """One client's view of the pool.

    All of a client's requests travel on one backend connection, in the order the client sent
    them: a ``set`` followed by a ``get`` on two different connections could be served in the
    other order. Only a read whose connection broke under it moves to another connection (a
    read can be retried safely; its connection's earlier writes have either landed or failed).
    """

    __slots__ = ("conn", "pool")

    def __init__(self, pool: BackendPool, conn: BackendConnection) -> None:
        self.pool, self.conn = pool, conn

    def send(self, payload: bytes, shape: int, callback: Callback) -> None:
        conn = self.conn
        if conn.state == CLOSED:
            conn = self.conn = self.pool.pick()
        conn.send(payload, shape, callback)

    def send_read(self, payload: bytes, shape: int, callback: Callback) -> None:
        conn = self.conn
        if conn.state == CLOSED:
            conn = self.conn = self.pool.pick()
        conn.send(payload, shape, callback, self)  # the lane itself: no bound method per read

    def close(self) -> None:
        """Nothing to release: the pool owns the connections, and a lane is never owned (L1Only
        and the chunked handler close only a connection they own)."""

    def retry(self, payload: bytes, shape: int, callback: Callback) -> None:
        """A read's connection broke under it: try other connections, a bounded number of times.
        (Nothing is allocated per read until a failure actually happens.)"""
        tries = [self.pool.read_retries]

        def answered(resp) -> None:
            if isinstance(resp, BackendError) and tries[0] > 0:
                tries[0] -= 1
                STATS.backend_errors[(self.pool.name, "retried")] += 1
                self.pool.pick().send(payload, shape, answered)
            else:
                callback(resp)

        answered(BackendError(f"backend {self.pool.name} connection lost"))
