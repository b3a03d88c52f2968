"""``--workers N``: N proxy processes share the client port (SO_REUSEPORT); one admin server.

Python runs one event loop per core at most, so the proxy scales out with processes. The kernel
spreads new client connections across the workers' listening sockets. The parent process serves
``/metrics``, ``/healthz`` and ``/readyz``: on each scrape it asks every worker for a snapshot of
its counters over a pipe and reports the sums, so Prometheus sees one proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import sys
from multiprocessing.connection import Connection

from .app import serve
from .config import Config
from .listener.listener import ListenError
from .listener.secure import Security
from .metrics.collector import merge
from .metrics.stats import STATS, Stats
from .process import install_event_loop

log = logging.getLogger("cacheproxy.workers")

SNAPSHOT_TIMEOUT = 2.0


def _worker_main(config: Config, pipe: Connection, index: int) -> None:
    """A worker: the whole proxy minus the admin server, answering snapshot requests."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM drains
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the reloader takes it over
    install_event_loop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        runtime_ready: dict = {}

        def on_request() -> None:
            try:
                pipe.recv()
            except (EOFError, OSError):
                loop.remove_reader(pipe.fileno())
                return
            snap = STATS.snapshot()
            snap["ready"] = runtime_ready.get("fn", lambda: (False, "starting"))()
            pipe.send(snap)

        loop.add_reader(pipe.fileno(), on_request)
        await serve(config, admin=False, ready_hook=lambda fn: runtime_ready.__setitem__("fn", fn),
                    upkeep=index == 0)

    try:
        asyncio.run(main())
    except ListenError as exc:
        log.error("worker %d: %s", index, exc.strerror)
        sys.exit(os.EX_OSERR)  # the parent sees it and stops the others
    log.info("worker %d (pid %d) stopped", index, os.getpid())


class Workers:
    def __init__(self, config: Config) -> None:
        self.config = config
        ctx = mp.get_context("fork")
        self.procs: list[mp.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        for i in range(config.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(config, child, i), name=f"cacheproxy-worker-{i}")
            proc.start()
            self.procs.append(proc)
            self.pipes.append(parent)

    def snapshots(self) -> list[dict]:
        out = []
        for proc, pipe in zip(self.procs, self.pipes, strict=True):
            if not proc.is_alive():
                continue
            try:
                pipe.send("snapshot")
                if pipe.poll(SNAPSHOT_TIMEOUT):
                    out.append(pipe.recv())
            except (EOFError, OSError):
                continue
        return out

    def merged(self) -> dict:
        snaps = self.snapshots()
        for s in snaps:
            s.pop("ready", None)
        return merge(snaps) if snaps else merge([_empty()])

    def ready(self) -> tuple[bool, str]:
        snaps = self.snapshots()
        if len(snaps) < len(self.procs):
            return False, f"{len(self.procs) - len(snaps)} worker(s) not answering"
        for s in snaps:
            ok, why = s.get("ready", (False, "unknown"))
            if not ok:
                return False, why
        return True, "ready"

    def forward(self, sig: int) -> None:
        """Pass SIG on to every worker (SIGHUP: each worker re-reads the config itself)."""
        for proc in self.procs:
            if proc.is_alive() and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def terminate(self) -> None:
        for proc in self.procs:
            if proc.is_alive() and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def join(self, timeout: float) -> None:
        for proc in self.procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _empty() -> dict:
    return Stats().snapshot()


def run_workers(config: Config) -> int:
    """Serve with config.workers workers until SIGTERM/SIGINT. A worker that exits on its own (it
    could not listen, or it crashed) stops the others: the exit code is the worker's, and the
    process supervisor (the kubelet) restarts the whole proxy, instead of it serving on fewer
    workers while never ready again."""
    workers = Workers(config)
    failed: list[int] = []

    async def admin() -> None:
        loop = asyncio.get_running_loop()
        security = Security(config)  # the admin port's TLS and its rotation
        runners = await security.admin_sites(workers.merged, workers.ready)
        tasks = security.start(loop, None)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def exited(proc: mp.process.BaseProcess) -> None:
            loop.remove_reader(proc.sentinel)
            if not stop.is_set():
                proc.join(5)  # it has ended (its sentinel fired): only the reaping is left
                log.error("%s exited on its own (code %s): stopping", proc.name, proc.exitcode)
                failed.append(proc.exitcode or 1)
                stop.set()

        for proc in workers.procs:
            loop.add_reader(proc.sentinel, exited, proc)
        loop.add_signal_handler(signal.SIGHUP, workers.forward, signal.SIGHUP)  # config reload
        await stop.wait()
        workers.terminate()
        await loop.run_in_executor(None, workers.join, config.shutdown_grace + 5)
        for task in tasks:
            task.cancel()
        for runner in runners:
            await runner.cleanup()

    try:
        asyncio.run(admin())
    finally:
        workers.terminate()
        workers.join(5)
    return failed[0] if failed else 0
