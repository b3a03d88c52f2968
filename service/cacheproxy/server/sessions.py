"""Which session serves a new client connection: Rend's rule, by the first byte.

A first byte of 0x80 is the binary protocol's request magic; anything else is the text (and
meta) protocol. The listener hands :func:`start_session` (or, with an auth file,
:func:`~cacheproxy.server.authgate.authenticating`) to every client connection, so the connection
itself knows no session.
"""

from __future__ import annotations

from typing import Final

from .binary import BinarySession
from .connection import ClientConnection, Session
from .text import TextSession

BINARY_MAGIC: Final = 0x80


def start_session(conn: ClientConnection, first_byte: int) -> Session:
    conn.orca = conn.context.new_orca()
    if first_byte == BINARY_MAGIC:
        return BinarySession(conn)
    return TextSession(conn)
