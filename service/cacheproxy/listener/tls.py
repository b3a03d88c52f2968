"""TLS on a client listener: count handshakes, then step out of the way.

uvloop calls a TLS connection's protocol only once the handshake has finished; a handshake that
fails (a plaintext client, an old protocol version, a missing or untrusted client certificate) or
that never finishes (aborted after ``ssl_handshake_timeout``) never reaches it, so the proxy holds
nothing for such a socket beyond uvloop's own, bounded, handshake state.

:class:`HandshakeWatch` is the protocol uvloop is given. When the handshake completes it counts
it and hands the transport to the real :class:`ClientConnection` (``transport.set_protocol``):
from then on the client's bytes go straight to it, with no extra call per read. When uvloop drops
a watch whose handshake never completed, the watch counts a failure (CPython frees it at once).
"""

from __future__ import annotations

import asyncio

from ..metrics.stats import STATS
from ..server.connection import ClientConnection


class HandshakeWatch(asyncio.Protocol):
    __slots__ = ("conn", "done")

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.done = True
        STATS.tls_handshakes["ok"] += 1
        conn = self.conn
        transport.set_protocol(conn)
        conn.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:  # only if the handover failed
        self.conn.connection_lost(exc)

    def data_received(self, data: bytes) -> None:  # not reached after the handover
        self.conn.data_received(data)

    def __del__(self) -> None:
        if not self.done:
            STATS.tls_handshakes["failed"] += 1
