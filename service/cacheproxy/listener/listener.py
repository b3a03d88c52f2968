"""The one accept loop: open a client listener; every accepted socket gets its own
:class:`~cacheproxy.server.connection.ClientConnection`, whose session is picked by its first
byte (SESSIONS: :func:`~cacheproxy.server.sessions.start_session`, or an authenticating factory).

A plain listener is the proxy's own accept loop over descriptors (:mod:`.stream`: half the
memory per idle client of a uvloop transport). With an SSLContext the listener is uvloop's, and
each socket speaks TLS through a :class:`~.tls.TLSLayer`: handshakes are counted and one that has
not finished after ``handshake_timeout`` seconds is aborted. The context object stays the
listener's for its lifetime; certificate rotation reloads it in place
(:class:`~cacheproxy.security.tls.CertReloader`).
"""

from __future__ import annotations

import asyncio
import os
import ssl

from ..backends.address import Address
from ..server.connection import ClientConnection, ServerContext, SessionFactory
from ..server.sessions import start_session
from .stream import StreamServer, tcp_sockets, unix_socket
from .tls import TLSLayer

BACKLOG = 4096
Listening = asyncio.AbstractServer | StreamServer  # what listen() returns: closed by the drain


class ListenError(OSError):
    """A port the proxy cannot listen on (taken, not permitted, no such address): the process
    exits with this one line, as memcached does, not a traceback."""

    @classmethod
    def of(cls, where: str, exc: OSError) -> ListenError:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # uvloop's own text repeats the address
        return cls(exc.errno, f"failed to listen on {where}: {reason}")


async def listen(context: ServerContext, address: Address, *, sessions: SessionFactory = start_session,
                 reuse_port: bool = False, ssl_context: ssl.SSLContext | None = None,
                 handshake_timeout: float = 10.0) -> Listening:
    try:
        return await _listen(context, address, sessions, reuse_port, ssl_context, handshake_timeout)
    except OSError as exc:
        raise ListenError.of(str(address), exc) from exc


async def _listen(context: ServerContext, address: Address, sessions: SessionFactory, reuse_port: bool,
                  ssl_context: ssl.SSLContext | None, handshake_timeout: float) -> Listening:
    loop = context.loop
    if address.is_unix and os.path.exists(address.path):
        os.unlink(address.path)

    if ssl_context is None:
        def connection() -> ClientConnection:
            return ClientConnection(context, sessions)

        sockets = [unix_socket(address.path, backlog=BACKLOG)] if address.is_unix else \
            tcp_sockets(address.host, address.port, reuse_port=reuse_port, backlog=BACKLOG)
        return StreamServer(loop, sockets, connection)

    def factory() -> TLSLayer:
        return TLSLayer(ssl_context, ClientConnection(context, sessions), handshake_timeout)

    if address.is_unix:
        return await loop.create_unix_server(factory, address.path, backlog=BACKLOG)
    return await loop.create_server(factory, address.host, address.port, backlog=BACKLOG, reuse_address=True,
                                    reuse_port=reuse_port or None)
