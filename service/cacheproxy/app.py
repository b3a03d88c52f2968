"""Runs the proxy: the composed stages (``compose.py``) behind the listener, plus the admin
server, backend health checks, client timeouts, the garbage collector's timer and the SIGTERM
drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Callable
from functools import partial

from .backends.address import parse_address
from .backends.connection import OPEN
from .backends.sweeper import sweep_forever
from .compose import Composition, OrcaFactory
from .config import Config
from .listener.listener import Listening, listen
from .listener.secure import Security
from .metrics.stats import STATS, clock
from .protocol.meta import LINE, code_of
from .reload import Reloader
from .security.authfile import Credentials
from .server.authgate import authenticating
from .server.connection import SessionFactory
from .server.sessions import start_session

log = logging.getLogger("cacheproxy")

HEALTH_INTERVAL = 1.0


def _resolve(future: asyncio.Future, resp: object) -> None:
    """A backend callback that completes FUTURE once (a late answer after a timeout is dropped)."""
    if not future.done():
        future.set_result(resp)


class Port:
    """The server context of one client port: the process's shared state, and the factory that
    gives each of the port's client connections its orca."""

    def __init__(self, runtime: Runtime, new_orca: OrcaFactory) -> None:
        self.runtime = runtime
        self.loop = runtime.loop
        self.clients = runtime.clients
        self.new_orca = new_orca

    @property
    def config(self) -> Config:
        return self.runtime.config


class Runtime:
    """Process-wide state shared by every client connection: the current config, the composed
    stages, the open clients, backend health, the drain."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, *,
                 peer_ssl: ssl.SSLContext | None = None, upkeep: bool = True) -> None:
        self.config = config
        self.loop = loop
        self.clients: set = set()
        self.draining = False
        self.composition = Composition(config, loop, peer_ssl=peer_ssl, upkeep=upkeep)
        self.backend_ok: dict[str, bool] = {"l1": False}
        if config.l2:
            self.backend_ok["l2"] = False
        self.port = Port(self, self.composition.orca_factory())
        # The ring's peer port: this member's own keys, served by the local orca, never forwarded.
        self.peer_port = Port(self, self.composition.local_orca_factory()) if config.ring else None
        self.auth: Credentials | None = Credentials.load(config.auth_file) if config.auth_file else None
        # How each client connection starts: authenticating first when there is an auth file.
        self.sessions: SessionFactory = authenticating(self.auth) if self.auth is not None else start_session
        STATS.client_connections_max = config.max_connections
        STATS.orca = config.orca_name

    def reconfigure(self, new: Config) -> None:
        """A reload (reload.py) swaps the config every reader reads at use, and the composition's
        live parts (backend timeouts, the ring)."""
        self.config = new
        logging.getLogger().setLevel(new.log_level.upper())
        STATS.client_connections_max = new.max_connections
        self.composition.reconfigure(new)

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.backend_ok["l1"]:  # L2 down degrades hits, it does not stop service
            return False, "backend l1 down"
        return True, "ready"

    # -- background duties -----------------------------------------------------------------

    async def health_check(self, name: str) -> None:
        """Ask the backend ``version`` every second on a connection of its own."""
        conn = self.composition.connection(name, f"{name}-health")
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
        """Close clients idle longer than idle_timeout, or stuck mid-request past read_timeout.
        Both are read from the current config at every tick, so a reload changes them."""
        while True:
            idle, stalled = self.config.idle_timeout, self.config.read_timeout
            if not idle and not stalled:
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(max(0.05, min(x for x in (idle, stalled) if x) / 4))
            now = clock()  # the clock the clients stamp their activity with
            for client in list(self.clients):
                if client.in_flight():
                    continue
                started = client.partial_since  # a request began arriving and is not complete
                if started is not None:
                    if stalled and now - started > stalled:  # a slow (or stuck) sender
                        STATS.errors["timeout"] += 1
                        client.close()
                elif idle and now - client.last_activity > idle:
                    STATS.errors["timeout"] += 1
                    client.close()

    async def drain(self, servers: list[Listening]) -> None:
        """SIGTERM: fail readiness, stop accepting, finish in-flight requests, close, exit.

        A connection closes right after an answer leaves it with nothing in flight: a client that
        waits for each answer reads the close with it, before it sends again, so it never has a
        request on the wire when the connection ends (whether that request ran would be unknown
        to it). Those with nothing in flight after DRAIN_IDLE_SECONDS are closed then (half-read
        requests included); whatever is left, at the grace."""
        self.draining = True
        STATS.draining = 1
        log.info("draining %d client connections (grace %.1fs)", len(self.clients), self.config.shutdown_grace)
        for server in servers:
            server.close()
        await asyncio.sleep(0.05)  # let bytes already in idle clients' sockets be read and served
        now = self.loop.time()
        deadline = now + self.config.shutdown_grace
        idle_close = now + min(DRAIN_IDLE_SECONDS, self.config.shutdown_grace)
        for client in list(self.clients):
            client.drain()
        while self.clients and self.loop.time() < deadline:
            if self.loop.time() >= idle_close:
                for client in list(self.clients):
                    if not client.in_flight():
                        client.close()
            await asyncio.sleep(0.02)
        for client in list(self.clients):
            client.abort()


DRAIN_IDLE_SECONDS = 0.5  # how long a draining proxy waits for an idle client's next request
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
        collect_once(ticks)


def collect_once(tick: int) -> str:
    """The collection due at TICK (counted from 1), timed into ``cacheproxy_gc_pause_seconds``:
    the loop serves nothing meanwhile, so each pause is latency every client waiting then sees
    (the first young collection after 10,000 clients connect scans their new objects: ~10 ms)."""
    started = clock()
    if tick % GC_FULL_TICKS == 0:
        kind = "full"
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    elif tick % GC_OLD_TICKS == 0:
        kind = "old"
        gc.collect()  # the permanent (frozen) generation is not scanned
        gc.freeze()
    else:
        kind = "young"
        gc.collect(1)
    STATS.gc_pauses[kind].observe(clock() - started)
    return kind


async def serve(config: Config, *, admin: bool = True, ready_event: asyncio.Event | None = None,
                ready_hook: Callable | None = None, upkeep: bool = True) -> None:
    """Run the proxy until SIGTERM/SIGINT, then drain. ``ready_hook`` receives the readiness
    function (used by ``--workers`` to report each worker's readiness to the parent). UPKEEP: this
    process runs the ring's background work on its memcacheds (one worker of a pod does)."""
    loop = asyncio.get_running_loop()
    security = Security(config)  # TLS listeners, admin TLS, the peers' mTLS, rotation (listener/secure.py)
    runtime = Runtime(config, loop, peer_ssl=security.peer_client_context, upkeep=upkeep)
    tune_gc()
    if ready_hook is not None:
        ready_hook(runtime.ready)
    reuse_port = config.workers > 1
    servers = await security.client_listeners(runtime.port, runtime.sessions, reuse_port=reuse_port)
    if config.batch_listen:
        batch = Port(runtime, runtime.composition.batch_orca_factory())
        servers.append(await listen(batch, config.address("batch_listen"), sessions=runtime.sessions,
                                    reuse_port=reuse_port))
    ring = config.ring
    if runtime.peer_port is not None and ring is not None:  # the ring's peer port (docs/ring.md)
        servers.append(await listen(runtime.peer_port, parse_address(ring.peer_listen), reuse_port=reuse_port,
                                    ssl_context=security.peer_server_context,
                                    handshake_timeout=config.tls_handshake_timeout))
        log.info("ring peer port on %s%s (member %s, generation %d)", ring.peer_listen,
                 " (mTLS)" if security.peer_server_context is not None else "", ring.self_name, ring.generation)
    runners = await security.admin_sites(STATS.snapshot, runtime.ready) if admin else []
    reloader = Reloader(runtime)
    tasks = [loop.create_task(sweep_forever()), loop.create_task(runtime.client_timeouts()),
             loop.create_task(collect_garbage())]
    tasks += [loop.create_task(runtime.health_check(name)) for name in runtime.backend_ok]
    tasks += reloader.start() + security.start(loop, runtime.auth)

    def reload_all() -> None:
        """SIGHUP: the config file, the certificates and the auth file, at once."""
        reloader.reload("SIGHUP")
        security.reload(runtime.auth)

    with contextlib.suppress(RuntimeError, ValueError):  # not the main thread (embedded use)
        loop.add_signal_handler(signal.SIGHUP, reload_all)
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
    for runner in runners:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await runner.cleanup()
    gc.enable()
    log.info("cacheproxy stopped")
