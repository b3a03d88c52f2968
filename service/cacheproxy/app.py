"""Wires the proxy together: listener → server → orca → handler → backend, plus the admin
server, health checks, timeouts and the SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from functools import partial

from aiohttp import web

from . import ringapp
from .backends.connection import OPEN, BackendConnection
from .backends.pool import BackendPool, Lane
from .backends.sweeper import sweep_forever, track
from .config import Config
from .listener.listener import listen
from .metrics.admin import build_app
from .metrics.stats import STATS, clock
from .orcas.l1only import L1Only
from .protocol.meta import LINE, code_of
from .ring.state import RingState

log = logging.getLogger("cacheproxy")

HEALTH_INTERVAL = 1.0


def _resolve(future: asyncio.Future, resp: object) -> None:
    """A backend callback that completes FUTURE once (a late answer after a timeout is dropped)."""
    if not future.done():
        future.set_result(resp)


class Runtime:
    """Process-wide state shared by every client connection."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.clients: set = set()
        self.draining = False
        self.pools: dict[str, BackendPool] = {}
        self.backend_ok: dict[str, bool] = {"l1": False}
        if config.l2:
            self.backend_ok["l2"] = False
        self.ring_state: RingState | None = None
        self.local_orca: Callable = self._orca_factory()
        # The ring (ringapp.py): routers around the local orcas when ``ring:`` is configured.
        self.new_orca: Callable = ringapp.wrap_orca_factory(self, self.local_orca)
        STATS.client_connections_max = config.max_connections
        STATS.orca = config.orca_name

    def _orca_factory(self) -> Callable:
        cfg = self.config
        l1 = cfg.address("l1")
        if cfg.orca_name == "l1only" and cfg.chunking.enabled:  # (l1l2 chunks in orcas/l1l2.py)
            return self._chunked_factory()
        if cfg.orca_name == "l1only":
            if cfg.batching.enabled:
                pool = self.pool("l1")
                return lambda: L1Only(pool.lane(), owned=False)
            return lambda: L1Only(track(BackendConnection(l1, "l1", cfg.backend_timeout)))
        from .orcas.l1l2 import make_l1l2_factory

        return make_l1l2_factory(self)

    def _chunked_factory(self) -> Callable:
        """L1Only with large values chunked over several L1 items (handlers/chunked.py)."""
        from .handlers.chunked import ChunkedHandler

        cfg, c = self.config, self.config.chunking
        l1 = cfg.address("l1")

        def make() -> ChunkedHandler:
            conn: BackendConnection | Lane
            if cfg.batching.enabled:
                conn, owned = self.pool("l1").lane(), False
            else:
                conn, owned = track(BackendConnection(l1, "l1", cfg.backend_timeout)), True
            return ChunkedHandler.for_item_size(conn, cfg.max_item_size, threshold=c.threshold,
                                                chunk_size=c.chunk_size, max_value_size=c.max_value_size,
                                                owned=owned)

        return make

    def pool(self, name: str) -> BackendPool:
        """The shared, batched connection pool to backend NAME (created once)."""
        if name not in self.pools:
            b = self.config.batching
            self.pools[name] = BackendPool(self.config.address(name), name, size=b.max_connections,
                                           timeout=self.config.backend_timeout, max_batch=b.max_batch,
                                           flush_us=b.flush_us)
        return self.pools[name]

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.backend_ok["l1"]:  # L2 down degrades hits, it does not stop service
            return False, "backend l1 down"
        return True, "ready"

    # -- background duties -----------------------------------------------------------------

    async def health_check(self, name: str) -> None:
        """Ask the backend ``version`` every second on a connection of its own."""
        conn = BackendConnection(self.config.address(name), f"{name}-health", min(self.config.backend_timeout, 1.0))
        track(conn)
        while True:
            done = self.loop.create_future()
            conn.send(b"version\r\n", LINE, partial(_resolve, done))
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # races with the answer, and this loop would then outlive shutdown.
                async with asyncio.timeout(HEALTH_INTERVAL * 2):
                    resp = await done
                ok = code_of(resp) == b"VERSION"
            except TimeoutError:
                ok = False
            if ok != self.backend_ok.get(name):
                log.log(logging.INFO if ok else logging.WARNING, "backend %s is %s", name, "up" if ok else "down")
            self.backend_ok[name] = ok
            STATS.backend_up[name] = int(ok)
            await asyncio.sleep(HEALTH_INTERVAL if ok or conn.state == OPEN else HEALTH_INTERVAL / 4)

    async def client_timeouts(self) -> None:
        """Close clients idle longer than idle_timeout, or stuck mid-request past read_timeout
        (read from the config each round: a reload may change them)."""
        while True:
            idle, partial = self.config.idle_timeout, self.config.read_timeout
            await asyncio.sleep(max(0.05, min(x for x in (idle, partial) if x) / 4) if idle or partial else 1.0)
            if not idle and not partial:
                continue
            now = clock()  # the clock the clients stamp their activity with
            for client in list(self.clients):
                if client.in_flight():
                    continue
                started = client.partial_since  # a request began arriving and is not complete
                if started is not None:
                    if partial and now - started > partial:  # a slow (or stuck) sender
                        STATS.errors["timeout"] += 1
                        client.close()
                elif idle and now - client.last_activity > idle:
                    STATS.errors["timeout"] += 1
                    client.close()

    async def drain(self, servers: list[asyncio.AbstractServer]) -> None:
        """SIGTERM: fail readiness, stop accepting, finish in-flight requests, close, exit."""
        self.draining = True
        STATS.draining = 1
        log.info("draining %d client connections (grace %.1fs)", len(self.clients), self.config.shutdown_grace)
        for server in servers:
            server.close()
        await asyncio.sleep(0.05)  # let bytes already in idle clients' sockets be read and served
        deadline = self.loop.time() + self.config.shutdown_grace
        while self.clients and self.loop.time() < deadline:
            for client in list(self.clients):
                if not client.in_flight():
                    client.close()
            await asyncio.sleep(0.02)
        for client in list(self.clients):
            client.abort()


GC_YOUNG_EVERY = 1.0  # seconds between collections of the young generations
GC_OLD_TICKS, GC_FULL_TICKS = 60, 600  # every minute: last minute's survivors; every 10 minutes: everything


def tune_gc() -> None:
    """Every request allocates a few short-lived objects, and with automatic collection the
    collector ran inside the hot path often enough to cost ~30% of the proxy's CPU (measured
    with bench/). Nearly all garbage here is freed by reference counting (connections break
    their own cycles when they close), so automatic collection is off and :func:`collect_garbage`
    runs it on a timer instead."""
    gc.collect()
    gc.freeze()
    gc.disable()


async def collect_garbage() -> None:
    """The young generations every second; once a minute the objects that survived the last
    minute, which are then frozen (long-lived connection state is not scanned again); everything,
    frozen objects included, every ten minutes. A full scan of 10,000 connections' objects takes
    ~40 ms (measured): done every minute it was the proxy's largest latency spike. A cycle among
    frozen objects waits at most ten minutes to be collected."""
    ticks = 0
    while True:
        await asyncio.sleep(GC_YOUNG_EVERY)
        ticks += 1
        if ticks % GC_FULL_TICKS == 0:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        elif ticks % GC_OLD_TICKS == 0:
            gc.collect()  # the permanent (frozen) generation is not scanned
            gc.freeze()
        else:
            gc.collect(1)


async def serve(config: Config, *, admin: bool = True, ready_event: asyncio.Event | None = None,
                ready_hook: Callable | None = None) -> None:
    """Run the proxy until SIGTERM/SIGINT, then drain. ``ready_hook`` receives the readiness
    function (used by ``--workers`` to report each worker's readiness to the parent)."""
    loop = asyncio.get_running_loop()
    runtime = Runtime(config, loop)
    tune_gc()
    if ready_hook is not None:
        ready_hook(runtime.ready)
    servers = [await listen(runtime, config.address("listen"), reuse_port=config.workers > 1)]
    if config.batch_listen:
        from .orcas.l1l2 import batch_runtime

        servers.append(await listen(batch_runtime(runtime), config.address("batch_listen"),
                                    reuse_port=config.workers > 1))
    servers += await ringapp.start_peer_listener(runtime, runtime.local_orca)
    runner = None
    if admin:
        app = build_app(STATS.snapshot, runtime.ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        a = config.address("admin")
        await web.TCPSite(runner, a.host, a.port, reuse_address=True).start()
    tasks = [loop.create_task(sweep_forever()), loop.create_task(runtime.client_timeouts()),
             loop.create_task(collect_garbage())]
    tasks += ringapp.start_reloader(runtime)
    tasks += [loop.create_task(runtime.health_check(name)) for name in runtime.backend_ok]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread (embedded use)
            loop.add_signal_handler(sig, stop.set)
    log.info("cacheproxy listening on %s (orca %s, l1 %s%s), admin on %s", config.listen, config.orca_name,
             config.l1, f", l2 {config.l2}" if config.l2 else "", config.admin)
    if ready_event is not None:
        ready_event.set()
    await stop.wait()
    await runtime.drain(servers)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=2)
    if runner is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await runner.cleanup()
    gc.enable()
    log.info("cacheproxy stopped")
