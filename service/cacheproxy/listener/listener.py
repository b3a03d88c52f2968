"""The one accept loop: open a client listener; every accepted socket gets its own
:class:`~cacheproxy.server.connection.ClientConnection`, whose session is picked by its first
byte (SESSIONS: :func:`~cacheproxy.server.sessions.start_session`, or an authenticating factory).

With an SSLContext the listener speaks TLS: handshakes are counted (see :mod:`.tls`) and one that
has not finished after HANDSHAKE_TIMEOUT seconds is aborted. The context object stays the
listener's for its lifetime; certificate rotation reloads it in place
(:class:`~cacheproxy.security.tls.CertReloader`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable

from ..backends.address import Address
from ..server.connection import ClientConnection, ServerContext, SessionFactory
from ..server.sessions import start_session
from .tls import HandshakeWatch


async def listen(context: ServerContext, address: Address, *, sessions: SessionFactory = start_session,
                 reuse_port: bool = False, ssl_context: ssl.SSLContext | None = None,
                 handshake_timeout: float = 10.0) -> asyncio.AbstractServer:
    loop = context.loop
    factory: Callable[[], asyncio.Protocol]

    if ssl_context is None:
        def factory() -> ClientConnection:
            return ClientConnection(context, sessions)
    else:
        def factory() -> HandshakeWatch:
            return HandshakeWatch(ClientConnection(context, sessions))

    timeout = None if ssl_context is None else handshake_timeout
    if address.is_unix:
        if os.path.exists(address.path):
            os.unlink(address.path)
        return await loop.create_unix_server(factory, address.path, backlog=4096, ssl=ssl_context,
                                             ssl_handshake_timeout=timeout)
    return await loop.create_server(factory, address.host, address.port, backlog=4096, reuse_address=True,
                                    reuse_port=reuse_port or None, ssl=ssl_context, ssl_handshake_timeout=timeout)
