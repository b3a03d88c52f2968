"""Open the client listener; every accepted socket gets its own ClientConnection."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from ..backends.address import Address
from ..server.connection import ClientConnection

if TYPE_CHECKING:
    from ..app import Runtime


async def listen(runtime: Runtime, address: Address, *, reuse_port: bool = False) -> asyncio.AbstractServer:
    loop = runtime.loop

    def factory() -> ClientConnection:
        return ClientConnection(runtime)

    if address.is_unix:
        if os.path.exists(address.path):
            os.unlink(address.path)
        return await loop.create_unix_server(factory, address.path, backlog=4096)
    return await loop.create_server(factory, address.host, address.port, backlog=4096,
                                    reuse_address=True, reuse_port=reuse_port or None)
