"""Peers: the other members' proxies, reached on their peer ports over pooled, pipelined,
batched meta connections (a :class:`~cacheproxy.backends.pool.BackendPool` per member).

A member that fails ``down_after`` forwarded requests in a row, or lets one time out, is marked
down (mcrouter's TKO): requests for its keys are then answered at once by the router without
being sent, and a background probe asks the member ``mn`` every ``probe_interval`` until it
answers ``MN``, which marks it up again. Its host name is resolved (getaddrinfo) on every
connect, so a member whose address changed is found again when its connections are redone.
With the ring's peer TLS configured, every connection to a peer (the probe's too) is mutual TLS
with the client context of :func:`cacheproxy.security.tls.peer_contexts`.

A member that restarts (a rolling update replaces its pod) is away for seconds. For ``down_wait``
seconds after it was marked down, the router parks (:meth:`Peer.park`) the requests that must reach it
(see :mod:`cacheproxy.ring.router`); they are resumed when the probe finds it back, or told to give
up when the wait ends, at most ``MAX_PARKED`` of them at a time. After that, until it is back,
requests are answered at once again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from functools import partial

from ..backends.address import parse_address
from ..backends.connection import BackendConnection, Callback
from ..backends.errors import BackendError
from ..backends.pool import BackendPool
from ..config.ring import Member
from ..metrics.stats import STATS, clock
from ..protocol.meta import META, MetaResponse, code_of

log = logging.getLogger("cacheproxy.ring")

# A peer proxy answering about its own backend (not a per-request refusal like "object too large").
_PEER_BACKEND_ERROR = b"SERVER_ERROR backend"
MAX_PARKED = 100_000  # requests waiting for one member; beyond it they are answered at once
FLAP_SECONDS = 1.0  # down again within this long of coming back: the same outage, the same wait

Resume = Callable[[bool], None]  # a parked request: True when its member is back, False when the wait ended


class Peer:
    """One other member: its pool, its up/down state and the probe that brings it back."""

    def __init__(self, member: Member, *, timeout: float, connections: int, down_after: int,
                 probe_interval: float, max_batch: int = 64, ssl_context: ssl.SSLContext | None = None,
                 down_wait: float = 0.0) -> None:
        self.name, self.peer = member.name, member.peer
        self.ssl_context = ssl_context
        self.address = parse_address(member.peer)
        self.timeout, self.down_after, self.probe_interval = timeout, down_after, probe_interval
        self.pool = BackendPool(self.address, f"ring:{self.name}", size=connections, timeout=timeout,
                                max_batch=max_batch, read_retries=0,  # a timeout marks it down: no retry
                                ssl_context=ssl_context)
        self.up = True
        self.epoch = 0  # bumped when marked down: clients then take fresh connections
        self.failures = 0
        self.retired = False
        self._probe: asyncio.Task | None = None
        self.down_wait = down_wait  # how long requests wait for it after it went down (0: not at all)
        self.down_since = self.up_since = 0.0
        self.wait_over = False  # the wait for it since it went down has ended (until it is back)
        self.waitable = False  # it went away (refused, closed, reset), as a restarting member does
        self._parked: list[Resume] = []
        self._wait_timer: asyncio.TimerHandle | None = None
        STATS.ring_member_up[self.name] = 1

    def connection(self) -> BackendConnection:
        """A client's connection to this member (kept until the member is marked down). Not a pool
        lane: a lane retries a read whose connection broke on another connection, and a member
        that times out must be marked down at once, not waited for three times."""
        return self.pool.pick()

    def set_timeout(self, timeout: float) -> None:
        self.timeout = self.pool.timeout = timeout
        for conn in self.pool.conns:
            conn.timeout = timeout

    # -- outcome of each forwarded request --------------------------------------------------

    def answered(self, resp: MetaResponse | BackendError | None, started: float) -> None:
        STATS.ring_forwarded[self.name] += 1
        STATS.ring_latency[self.name].observe(clock() - started)
        if isinstance(resp, BackendError):
            self.failed("timeout" if "timeout" in resp.reason else "unavailable")
        elif isinstance(resp, MetaResponse) and resp.code == b"SERVER_ERROR" and resp.raw.startswith(
                _PEER_BACKEND_ERROR):
            self.failed("member_backend")
        else:
            self.failures = 0

    def failed(self, kind: str) -> None:
        STATS.ring_errors[(self.name, kind)] += 1
        self.failures += 1
        if self.up and (kind == "timeout" or self.failures >= self.down_after):
            self.mark_down(kind)

    def mark_down(self, why: str) -> None:
        self.up = False
        self.epoch += 1
        now = clock()
        if not self.down_since or now - self.up_since >= FLAP_SECONDS:  # else a flap: the wait goes on
            self.down_since, self.wait_over = now, False
            # A member that hangs (timeout) or whose memcached fails is not waited for: only one
            # whose connections went away, as a restarting pod's do.
            self.waitable = why not in ("timeout", "member_backend")
        STATS.ring_member_up[self.name] = 0
        log.warning("ring member %s (%s) is down (%s); probing every %.2fs", self.name, self.peer, why,
                    self.probe_interval)
        # Drop its connections: requests still on them fail now, and the next ones reconnect
        # (and so re-resolve the name) once the member is back.
        self.pool.close()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    def mark_up(self) -> None:
        self.up, self.failures, self.up_since = True, 0, clock()
        STATS.ring_member_up[self.name] = 1
        log.info("ring member %s (%s) is up%s", self.name, self.peer,
                 f"; sending the {len(self._parked)} requests that waited for it" if self._parked else "")
        self._release(True)

    # -- requests waiting for the member ------------------------------------------------------

    def may_wait(self) -> bool:
        """Whether a request that needs this member may wait for it now: it is up (and about to be
        marked down by the caller), or it went away less than ``down_wait`` ago."""
        if self.down_wait <= 0 or self.retired or len(self._parked) >= MAX_PARKED:
            return False
        return self.up or (self.waitable and not self.wait_over and clock() < self.down_since + self.down_wait)

    def park(self, resume: Resume) -> None:
        """RESUME(True) once the member is back, or RESUME(False) when the wait ends (call
        :meth:`may_wait` first). Parking marks a member that is still up down, so the probe
        looks for its return."""
        if self.up:
            self.mark_down("connection lost")
        self._parked.append(resume)
        STATS.ring_waits["parked"] += 1
        if self._wait_timer is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self.down_since + self.down_wait - clock())
            self._wait_timer = loop.call_later(delay, self._release, False)

    def _release(self, up: bool) -> None:
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        parked, self._parked = self._parked, []
        if not up and not self.up:
            self.wait_over = True
        if parked:
            STATS.ring_waits["resumed" if up else "expired"] += len(parked)
            if not up:
                log.warning("ring member %s did not come back within %.1fs: %d waiting requests failed",
                            self.name, self.down_wait, len(parked))
        for resume in parked:
            try:
                resume(up)
            except Exception:  # one request's failure must not strand the others
                log.exception("resuming a request that waited for %s", self.name)

    async def _probe_until_up(self) -> None:
        conn = BackendConnection(self.address, f"ring:{self.name}-probe", self.timeout, ssl_context=self.ssl_context)
        loop = asyncio.get_running_loop()
        try:
            while not self.retired:
                done: asyncio.Future = loop.create_future()
                conn.send(b"mn\r\n", META, partial(_resolve, done))
                try:
                    async with asyncio.timeout(max(self.probe_interval * 2, min(self.timeout, 1.0))):
                        resp = await done
                except TimeoutError:
                    conn.abort("probe timeout")  # a stopped member: start over on a new connection
                    resp = None
                if code_of(resp) == b"MN":
                    self.mark_up()
                    return
                await asyncio.sleep(self.probe_interval)
        finally:
            conn.close()

    def retire(self) -> None:
        """No longer a member (after a reload): stop probing; close once in-flight requests are done."""
        self.retired = True
        STATS.ring_member_up.pop(self.name, None)
        if self._probe is not None:
            self._probe.cancel()
        loop = asyncio.get_running_loop()
        loop.call_soon(self._release, False)  # after the new view is in place: they are routed by it
        loop.call_later(max(self.timeout * 2, 5.0), self.pool.close)


def _resolve(future: asyncio.Future, resp: object) -> None:
    if not future.done():
        future.set_result(resp)


class Forwarded:
    """The callback of one forwarded request: tells the peer how it went, then the client."""

    __slots__ = ("cb", "peer", "started")

    def __init__(self, peer: Peer, cb: Callback) -> None:
        self.peer, self.cb, self.started = peer, cb, clock()

    def done(self, resp: MetaResponse | BackendError) -> None:
        with contextlib.suppress(Exception):  # accounting must never keep the client's answer
            self.peer.answered(resp, self.started)
        self.cb(resp)
