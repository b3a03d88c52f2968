"""The interface every orca offers to the per-connection servers.

An orca holds its handlers (one per level it visits) and decides, per request, which levels are
asked and in which order; the servers turn its answers into the client's protocol. Callbacks are
called exactly once with a :class:`~cacheproxy.protocol.meta.MetaResponse` (meta codes: VA, HD,
EN, NF, NS, EX, or a raw error line) or a :class:`~cacheproxy.backends.errors.BackendError`.
"""

from __future__ import annotations

from typing import Protocol

from ..backends.connection import Callback
from ..handlers.base import TextShortcuts


class Orca(Protocol):
    # Capabilities the servers read once per connection:
    @property
    def shortcuts(self) -> TextShortcuts | None:
        """What serves a plain text get or set directly (``get_text``, ``set_text``), or None when
        every request must go through the orca's operations."""
    counts_lookups: bool
    """True when the orca counts hits and misses per level itself; else the server counts them."""

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None: ...

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None: ...

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None: ...

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None: ...

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None: ...

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None: ...

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None: ...

    def close(self) -> None:
        """The client went away: release this orca's handlers (and their own connections)."""
