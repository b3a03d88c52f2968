"""The interface every handler offers to the orcas.

A handler decides how one logical item is laid out on one backend (plain: one memcached item;
chunked: a metadata item and chunks) and speaks to that backend through one connection or pool
lane. Each operation takes a callback that is called exactly once with the backend's
:class:`~cacheproxy.protocol.meta.MetaResponse` (or ``None`` for a quiet meta command that had
nothing to say) or a :class:`~cacheproxy.backends.errors.BackendError`. Orcas hold handlers and
decide which levels a request visits; they never see backend connections.
"""

from __future__ import annotations

from typing import Protocol

from ..backends.connection import Callback


class Handler(Protocol):
    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        """``mg key v f [c] [t] [T<exptime>]``: VA on a hit, EN on a miss."""

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        """Store with a text mode (``S`` set, ``E`` add, ``R`` replace, ``A``/``P`` append/prepend,
        ``C`` cas): HD / NS / EX / NF."""

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None: ...

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None: ...

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None: ...

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        """A client's meta command, as written."""

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        """A plain text command the backend answers itself (stats, version, flush_all, verbosity)."""

    def close(self) -> None:
        """The client went away: answer whatever is still owed and release a connection this
        handler owns (a pool lane is shared and stays open)."""


class TextShortcuts(Protocol):
    """The two requests most clients send most, served without building a request object: a
    plain one-key text ``get`` and a plain text ``set`` (no ``noreply``). Offered by a plain
    handler, and by the ring's router in front of one (it sends each to the key's owner)."""

    def get_text(self, key: bytes, cb: Callback) -> None:
        """A hit reaches CB as the text answer's bytes after ``VALUE <key> `` (see
        :func:`~cacheproxy.protocol.meta.read_text_value`); a miss or an error as a MetaResponse
        or BackendError."""

    def set_text(self, key: bytes, request: bytes, cb: Callback) -> None:
        """REQUEST is the client's whole ``set`` of KEY (command line and data block), as written;
        the answer line (``STORED``, ``NOT_STORED``...) reaches CB as bytes, an error as a
        MetaResponse or BackendError."""
