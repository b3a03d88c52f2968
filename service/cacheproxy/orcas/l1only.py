"""L1Only: every request goes to the one memcached (Rend's default orca).

The orca holds one handler (plain, or chunked for large values) on L1. In Rend's classic layout
the handler owns a backend connection per client, so a fault on one client's connection touches
no other client; with ``batching.enabled`` it rides a lane of the shared, batched pool instead.
Which of the two is decided where the proxy is composed (``compose.py``), not here.
"""

from __future__ import annotations

from ..backends.connection import Callback
from ..handlers.base import Handler, TextShortcuts
from ..handlers.plain import PlainHandler


class L1Only:
    """One level: each operation is the handler's. A plain handler's shortcuts are offered to the
    servers (``shortcuts``), and the servers count its hits and misses."""

    __slots__ = ("handler", "shortcuts")
    counts_lookups = False

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.shortcuts: TextShortcuts | None = None
        if isinstance(handler, PlainHandler):  # (an if statement: mypyc mistyped the conditional expression)
            self.shortcuts = handler

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        self.handler.get(key, cb, cas=cas, exptime=exptime, ttl=ttl)

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        self.handler.store(mode, key, flags, exptime, data, cas_unique, cb)

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        self.handler.delete(key, cb, base64=base64)

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        self.handler.touch(key, exptime, cb)

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        self.handler.arith(key, delta, incr, cb)

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        self.handler.meta(line, data, quiet, cb)

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        self.handler.text(line, multiline, cb)

    def close(self) -> None:
        self.handler.close()
