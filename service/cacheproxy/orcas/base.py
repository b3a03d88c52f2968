"""The interface every orca offers to the per-connection servers."""

from __future__ import annotations

from typing import Protocol

from ..backends.connection import Callback


class Orca(Protocol):
    """Callback-style operations; each callback is called exactly once with a
    :class:`~cacheproxy.protocol.meta.MetaResponse` (meta codes: VA/HD/EN/NF/NS/EX, or a raw
    error line) or a :class:`~cacheproxy.backends.errors.BackendError`."""

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
        """The client went away: release this orca's own backend connections."""
