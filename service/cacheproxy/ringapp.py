"""Wiring the ring into the process: the one place app.py calls when ``ring:`` is configured.

* :func:`wrap_orca_factory` wraps the local orca factory with the routing orca;
* :func:`start_peer_listener` opens the peer port, served by the *local* orca only (a request that
  arrives there is never forwarded again, so two proxies whose rings disagree cannot loop);
* :func:`start_reloader` re-reads the config on SIGHUP and when the file changes (reload.py).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends.address import parse_address
from .backends.connection import BackendConnection
from .handlers.chunked import ChunkedHandler
from .handlers.plain import PlainHandler
from .listener.listener import listen
from .metrics.stats import STATS
from .reload import Reloader
from .ring.router import RingRouter
from .ring.state import RingState

if TYPE_CHECKING:
    from .app import Runtime

log = logging.getLogger("cacheproxy.ring")


def wrap_orca_factory(runtime: Runtime, local_factory: Callable[[], Any]) -> Callable[[], Any]:
    """LOCAL_FACTORY itself without a ring; else a factory of routers around its orcas."""
    cfg = runtime.config
    if cfg.ring is None:
        return local_factory
    state = RingState(cfg.backend_timeout, max_batch=cfg.batching.max_batch)
    state.apply(cfg.ring)
    runtime.ring_state = state
    STATS.ring_view = state.describe
    c = cfg.chunking

    def forwarder(conn: BackendConnection) -> Any:
        """A peer is reached with the local orca's handler kind: chunked values are laid out on
        the owner's memcached exactly as its own proxy lays them out."""
        if cfg.orca_name == "l1only" and c.enabled:
            return ChunkedHandler.for_item_size(conn, cfg.max_item_size, threshold=c.threshold,
                                                chunk_size=c.chunk_size, max_value_size=c.max_value_size,
                                                owned=False)
        return PlainHandler(conn)

    def make() -> RingRouter:
        return RingRouter(local_factory(), state, forwarder)

    return make


async def start_peer_listener(runtime: Runtime, local_factory: Callable[[], Any]) -> list[asyncio.AbstractServer]:
    cfg = runtime.config
    if cfg.ring is None:
        return []
    peer_runtime = copy.copy(runtime)
    peer_runtime.new_orca = local_factory
    server = await listen(peer_runtime, parse_address(cfg.ring.peer_listen), reuse_port=cfg.workers > 1)
    log.info("ring peer port on %s (member %s, generation %d)", cfg.ring.peer_listen, cfg.ring.self_name,
             cfg.ring.generation)
    return [server]


def start_reloader(runtime: Runtime) -> list[asyncio.Task]:
    reloader = Reloader(runtime)
    return reloader.start()
