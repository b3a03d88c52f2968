"""Open a client listener; every accepted socket gets its own ClientConnection.

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
from typing import TYPE_CHECKING

from ..backends.address import Address
from ..server.connection import ClientConnection
from .tls import HandshakeWatch

if TYPE_CHECKING:
    from ..app import Runtime


async def listen(runtime: Runtime, address: Address, *, reuse_port: bool = False,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float = 10.0) -> asyncio.AbstractServer:
    loop = runtime.loop
    factory: Callable[[], asyncio.Protocol]

    if ssl_context is None:
        def factory() -> ClientConnection:
            return ClientConnection(runtime)
    else:
        def factory() -> HandshakeWatch:
            return HandshakeWatch(ClientConnection(runtime))

    timeout = None if ssl_context is None else handshake_timeout
    if address.is_unix:
        if os.path.exists(address.path):
            os.unlink(address.path)
        return await loop.create_unix_server(factory, address.path, backlog=4096, ssl=ssl_context,
                                             ssl_handshake_timeout=timeout)
    return await loop.create_server(factory, address.host, address.port, backlog=4096, reuse_address=True,
                                    reuse_port=reuse_port or None, ssl=ssl_context, ssl_handshake_timeout=timeout)
