"""Request objects produced by the sans-IO parsers and consumed by the orcas.

They describe *what* a client asked for, independent of the wire protocol it used, so one
orca serves text, meta and binary clients alike. Plain classes with ``__slots__``: one is
built per request on the hot path.
"""

from __future__ import annotations

# Store modes, named as memcached's meta protocol names them (ms M<mode>).
SET, ADD, REPLACE, APPEND, PREPEND, CAS = b"S", b"E", b"R", b"A", b"P", b"C"


class Request:
    """Base: every request carries the command name used for metrics."""

    __slots__ = ("command",)
    command: str


class Get(Request):
    """get/gets/gat/gats: one or more keys; ``exptime`` set for the touching variants."""

    __slots__ = ("cas", "exptime", "keys")

    def __init__(self, command: str, keys: list[bytes], cas: bool, exptime: int | None = None) -> None:
        self.command, self.keys, self.cas, self.exptime = command, keys, cas, exptime


class Store(Request):
    """set/add/replace/append/prepend/cas with its data block (without the trailing CRLF)."""

    __slots__ = ("cas_unique", "data", "exptime", "flags", "key", "mode", "noreply")

    def __init__(self, command: str, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes,
                 cas_unique: int, noreply: bool) -> None:
        self.command, self.mode, self.key, self.flags = command, mode, key, flags
        self.exptime, self.data, self.cas_unique, self.noreply = exptime, data, cas_unique, noreply


class Delete(Request):
    __slots__ = ("key", "noreply")

    def __init__(self, key: bytes, noreply: bool) -> None:
        self.command, self.key, self.noreply = "delete", key, noreply


class Touch(Request):
    __slots__ = ("exptime", "key", "noreply")

    def __init__(self, key: bytes, exptime: int, noreply: bool) -> None:
        self.command, self.key, self.exptime, self.noreply = "touch", key, exptime, noreply


class Arith(Request):
    """incr/decr; ``delta`` is an unsigned 64-bit integer."""

    __slots__ = ("delta", "incr", "key", "noreply")

    def __init__(self, key: bytes, delta: int, incr: bool, noreply: bool) -> None:
        self.command = "incr" if incr else "decr"
        self.key, self.delta, self.incr, self.noreply = key, delta, incr, noreply


class Meta(Request):
    """A meta command (mg/ms/md/ma/mn/me) forwarded to L1 as written, minus its ``q`` flag.

    The proxy strips ``q`` so that every forwarded command gets exactly one reply (keeping the
    backend pipeline in lock-step) and applies quiet mode itself when the reply comes back.
    """

    __slots__ = ("base64", "data", "flags", "key", "line", "quiet")

    def __init__(self, command: str, key: bytes, flags: list[bytes], line: bytes, data: bytes | None,
                 quiet: bool, base64: bool) -> None:
        self.command, self.key, self.flags, self.line = command, key, flags, line
        self.data, self.quiet, self.base64 = data, quiet, base64


class Passthrough(Request):
    """flush_all / verbosity / stats / version: a text command answered by the backend."""

    __slots__ = ("line", "noreply")

    def __init__(self, command: str, line: bytes, noreply: bool) -> None:
        self.command, self.line, self.noreply = command, line, noreply


class Reply(Request):
    """An answer the parser gives by itself (protocol errors), queued in order with the rest."""

    __slots__ = ("data",)

    def __init__(self, command: str, data: bytes) -> None:
        self.command, self.data = command, data


class TooLarge(Request):
    """A store whose value can never fit: answered locally, its data swallowed unbuffered.

    memcached also drops any old value of the key on a too-large ``set`` (and on any ``ms``), so
    the orca deletes it from the backend when ``unlink`` is set.
    """

    __slots__ = ("base64", "key", "noreply", "unlink")

    def __init__(self, command: str, key: bytes, unlink: bool, noreply: bool, base64: bool = False) -> None:
        self.command, self.key, self.unlink, self.noreply, self.base64 = command, key, unlink, noreply, base64


class Quit(Request):
    """``quit``: answer everything before it, then close."""

    __slots__ = ()

    def __init__(self) -> None:
        self.command = "quit"


class Close(Request):
    """The connection must be closed the way memcached closes it (junk, oversized line)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.command, self.reason = "close", reason
