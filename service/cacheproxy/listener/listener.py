"""The one accept loop: open the client listener; every accepted socket gets its own
:class:`~cacheproxy.server.connection.ClientConnection`, whose session is picked by its first
byte (:func:`~cacheproxy.server.sessions.start_session`)."""

from __future__ import annotations

import asyncio
import os

from ..backends.address import Address
from ..server.connection import ClientConnection, ServerContext
from ..server.sessions import start_session


async def listen(context: ServerContext, address: Address, *, reuse_port: bool = False) -> asyncio.AbstractServer:
    loop = context.loop

    def factory() -> ClientConnection:
        return ClientConnection(context, start_session)

    if address.is_unix:
        if os.path.exists(address.path):
            os.unlink(address.path)
        return await loop.create_unix_server(factory, address.path, backlog=4096)
    return await loop.create_server(factory, address.host, address.port, backlog=4096,
                                    reuse_address=True, reuse_port=reuse_port or None)
