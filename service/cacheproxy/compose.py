"""The composition root: the one place that builds the proxy's stages from the config.

Rend composes its stages in one place; so does this module. From a :class:`~cacheproxy.config.Config`
it builds the shared backend pools, each client connection's handlers (plain or chunked, on an
own connection or a pool lane) and its orca (L1Only, L1L2, L1L2Batch), and hands the servers a
factory that gives each new client connection its orca (with batching, the clients on one pool
connection share an L1Only: it keeps nothing per client). Nothing else constructs backend
connections, handlers or orcas. With a ``ring`` section, routing to other members is one more
layer: a :class:`~cacheproxy.ring.router.RingRouter` around each client's local orca, with
forwarding handlers on pooled connections to the peers' ports.

What the config decides here (addresses, orca kind, batching, chunking) is fixed for the life
of the process; :data:`RESTART_KEYS` names those keys for the reloader.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from .backends.connection import CLOSED, BackendConnection
from .backends.pool import BackendPool, Lane
from .backends.sweeper import track
from .config import Config
from .handlers.base import Handler
from .handlers.chunked import ChunkedHandler
from .handlers.plain import PlainHandler
from .metrics.stats import STATS
from .orcas.base import Orca
from .orcas.l1l2 import L1L2, L1L2Batch, StripedLocks
from .orcas.l1only import L1Only
from .ring.handover import Handover
from .ring.router import RingRouter
from .ring.state import RingState
from .ring.sweep import OrphanSweep

OrcaFactory = Callable[[], Orca]

# Config keys whose change needs a restart: they shape what is composed (and what listens).
RESTART_KEYS = ("listen", "admin", "batch_listen", "l1", "l2", "orca", "locked", "workers", "max_item_size",
                "chunking", "batching")


class Composition:
    """The pools shared by every client connection, and the factories built on them."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, *,
                 peer_ssl: ssl.SSLContext | None = None, upkeep: bool = True) -> None:
        """PEER_SSL: the client context the ring's connections to peers use (mTLS), or None.
        UPKEEP: this process sweeps orphans and hands keys over on its memcacheds; with
        ``--workers`` only the first worker does (the others would repeat its every step)."""
        self.config = config
        self.loop = loop
        self.pools: dict[str, BackendPool] = {}
        self.locks = StripedLocks() if config.locked else None
        self.ring: RingState | None = None
        if config.ring is not None:
            own = [config.address("l1"), *([config.address("l2")] if config.l2 else [])]
            self.ring = RingState(config.backend_timeout, max_batch=config.batching.max_batch, ssl_context=peer_ssl,
                                  sweep=OrphanSweep(own) if upkeep else None,
                                  handover=Handover(own, lambda: self.orca_factory()()) if upkeep else None)
            self.ring.apply(config.ring)
            STATS.ring_view = self.ring.describe  # GET /ring

    def reconfigure(self, config: Config) -> None:
        """A reload's live keys: the backend timeout of every pooled connection, the ring."""
        old, self.config = self.config, config
        if config.backend_timeout != old.backend_timeout:
            for pool in self.pools.values():
                pool.timeout = config.backend_timeout
                for conn in pool.conns:
                    conn.timeout = config.backend_timeout
        if self.ring is not None and config.ring is not None:
            self.ring.set_timeout(config.backend_timeout)
            self.ring.apply(config.ring)

    # -- backends --------------------------------------------------------------------------

    def pool(self, level: str) -> BackendPool:
        """The shared, batched connection pool to backend LEVEL (created once)."""
        if level not in self.pools:
            cfg, b = self.config, self.config.batching
            self.pools[level] = BackendPool(cfg.address(level), level, size=b.max_connections,
                                            timeout=cfg.backend_timeout, max_batch=b.max_batch, flush_us=b.flush_us)
        return self.pools[level]

    def connection(self, level: str, name: str | None = None) -> BackendConnection:
        """A backend connection of its own to LEVEL, timed out by the sweeper."""
        return track(BackendConnection(self.config.address(level), name or level, self.config.backend_timeout))

    # -- handlers --------------------------------------------------------------------------

    def handler(self, level: str) -> Handler:
        """One client's handler on LEVEL: a lane of the pool when batching, else a connection of
        its own (Rend's classic layout); chunked when chunking is on."""
        cfg = self.config
        conn: BackendConnection | Lane
        if cfg.batching.enabled:
            conn, owned = self.pool(level).lane(), False
        else:
            conn, owned = self.connection(level), True
        c = cfg.chunking
        if c.enabled:
            return ChunkedHandler.for_item_size(conn, cfg.max_item_size, threshold=c.threshold,
                                                chunk_size=c.chunk_size, max_value_size=c.max_value_size,
                                                owned=owned)
        return PlainHandler(conn, owned)

    # -- orcas -----------------------------------------------------------------------------

    def orca_factory(self) -> OrcaFactory:
        """Each client connection's orca on the client port: the local orca, routed by the ring
        when there is one."""
        local = self.local_orca_factory()
        ring = self.ring
        if ring is None:
            return local
        return lambda: RingRouter(local(), ring, self.forwarder)

    def local_orca_factory(self) -> OrcaFactory:
        """The orca that serves this member's own keys (alone on the ring's peer port)."""
        cfg = self.config
        if cfg.orca_name != "l1only":
            return self._l1l2_factory(L1L2)
        if cfg.batching.enabled and not cfg.chunking.enabled:
            return self._shared_per_connection()
        return lambda: L1Only(self.handler("l1"))

    def _shared_per_connection(self) -> OrcaFactory:
        """L1Only over a plain handler on a pool lane keeps nothing per client, so the clients
        whose lane the pool puts on the same connection share one (picked as for a lane of their
        own: the least busy connection; a lane's connection changes only when it closes, so each
        client's requests still travel in order on one connection). Saves ~180 bytes per client
        connection: 1.8 MB at 10,000 clients."""
        by_connection: dict[BackendConnection, Orca] = {}

        def shared() -> Orca:
            pool = self.pool("l1")
            conn = pool.pick()
            orca = by_connection.get(conn)
            if orca is None:
                for gone in [c for c in by_connection if c.state == CLOSED]:
                    del by_connection[gone]
                orca = by_connection[conn] = L1Only(PlainHandler(Lane(pool, conn), False))
            return orca

        return shared

    def forwarder(self, conn: BackendConnection) -> Handler:
        """The handler that reaches a peer's port on CONN: with chunking on L1Only, values are
        chunked on the way, as the owner's own proxy would lay them out."""
        cfg, c = self.config, self.config.chunking
        if cfg.orca_name == "l1only" and c.enabled:
            return ChunkedHandler.for_item_size(conn, cfg.max_item_size, threshold=c.threshold,
                                                chunk_size=c.chunk_size, max_value_size=c.max_value_size)
        return PlainHandler(conn)

    def batch_orca_factory(self) -> OrcaFactory:
        """The bulk loaders' port (``batch_listen``): L1L2Batch over the same pools."""
        if not self.config.l2:
            raise ValueError("batch_listen needs an l2 backend")
        return self._l1l2_factory(L1L2Batch)

    def _l1l2_factory(self, orca: type[L1L2]) -> OrcaFactory:
        return lambda: orca(self.handler("l1"), self.handler("l2"), self.loop, self.locks)
