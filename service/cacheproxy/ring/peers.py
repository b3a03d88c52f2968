"""Peers: the other members' proxies, reached on their peer ports over pooled, pipelined,
batched meta connections (a :class:`~cacheproxy.backends.pool.BackendPool` per member).

A member that fails ``down_after`` forwarded requests in a row, or lets one time out, is marked
down (mcrouter's TKO): requests for its keys are then answered at once by the router without
being sent, and a background probe asks the member ``mn`` every ``probe_interval`` until it
answers ``MN``, which marks it up again. Its host name is resolved (getaddrinfo) on every
connect, so a member whose address changed is found again when its connections are redone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


class Peer:
    """One other member: its pool, its up/down state and the probe that brings it back."""

    def __init__(self, member: Member, *, timeout: float, connections: int, down_after: int,
                 probe_interval: float, max_batch: int = 64) -> None:
        self.name, self.peer = member.name, member.peer
        self.address = parse_address(member.peer)
        self.timeout, self.down_after, self.probe_interval = timeout, down_after, probe_interval
        self.pool = BackendPool(self.address, f"ring:{self.name}", size=connections, timeout=timeout,
                                max_batch=max_batch, read_retries=0)  # a timeout marks it down: no retry
        self.up = True
        self.epoch = 0  # bumped when marked down: clients then take fresh connections
        self.failures = 0
        self.retired = False
        self._probe: asyncio.Task | None = None
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
        STATS.ring_member_up[self.name] = 0
        log.warning("ring member %s (%s) is down (%s); probing every %.2fs", self.name, self.peer, why,
                    self.probe_interval)
        # Drop its connections: requests still on them fail now, and the next ones reconnect
        # (and so re-resolve the name) once the member is back.
        self.pool.close()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    def mark_up(self) -> None:
        self.up, self.failures = True, 0
        STATS.ring_member_up[self.name] = 1
        log.info("ring member %s (%s) is up", self.name, self.peer)

    async def _probe_until_up(self) -> None:
        conn = BackendConnection(self.address, f"ring:{self.name}-probe", self.timeout)
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
