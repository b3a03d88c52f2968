"""The plain handler: one logical item is one memcached item, reached with meta commands.

Each method writes one meta command and hands the backend's answer (a
:class:`~cacheproxy.protocol.meta.MetaResponse`) or a
:class:`~cacheproxy.backends.errors.BackendError` to its callback. The orcas turn those into
protocol answers; text commands are translated to meta here so every backend command can be
pipelined and batched (a text command with ``noreply`` has no answer to keep a pipeline in step).

Two shortcuts serve the text requests clients send most: a plain ``set`` is forwarded as the
client wrote it (memcached's ``STORED`` line is the client's answer), and a plain ``get``'s hit
is read straight into the text answer's bytes. A text ``get`` is *not* forwarded: memcached spends
about 3x the CPU on it that it spends on ``mg <key> v f`` (measured: 2.3 vs 0.7 µs per pipelined
request).
"""

from __future__ import annotations

from ..backends.connection import BackendConnection, Callback
from ..backends.pool import Lane
from ..protocol.meta import LINE, LINES, META, QUIET, TEXT_STORE, TEXT_VALUE


class PlainHandler:
    __slots__ = ("conn", "owned")

    def __init__(self, conn: BackendConnection | Lane, owned: bool = False) -> None:
        # Reads go out with conn.send_read: a pool's lane retries them on another connection when
        # theirs breaks under them; a lone connection's send_read is its send.
        self.conn = conn
        self.owned = owned  # this client's own connection (closed with it), not a shared lane

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        """``mg key v f [c] [T<exptime>] [t]``: VA on a hit, EN on a miss."""
        if not cas and not ttl and exptime is None:  # a plain get
            self.conn.send_read(b"mg %b v f\r\n" % key, META, cb)
            return
        cmd = b"mg " + key + b" v f"
        if cas:
            cmd += b" c"
        if exptime is not None:  # before t: memcached applies flags in order, t then shows the new TTL
            cmd += b" T%d" % exptime
        if ttl:
            cmd += b" t"
        if exptime is not None:
            self.conn.send(cmd + b"\r\n", META, cb)
        else:
            self.conn.send_read(cmd + b"\r\n", META, cb)

    def get_text(self, key: bytes, cb: Callback) -> None:
        """A plain text ``get key``, asked as ``mg key v f`` (memcached spends 3x the CPU on a text
        ``get``); a hit reaches CB as the text answer's bytes after ``VALUE <key> `` (see
        :func:`~cacheproxy.protocol.meta.read_text_value`), a miss or an error as a MetaResponse."""
        self.conn.send_read(b"mg %b v f\r\n" % key, TEXT_VALUE, cb)

    def set_text(self, key: bytes, request: bytes, cb: Callback) -> None:
        """A client's whole ``set`` (command line and data block) as written, answered by
        memcached's own ``STORED``/``NOT_STORED``... line, passed on as bytes."""
        self.conn.send(request, TEXT_STORE, cb)

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        """``ms key len F T M<mode> [C<cas>]``: HD/NS/EX/NF. A text ``cas`` is mode S plus C."""
        if mode == b"C":
            head = b"ms %s %d F%d T%d C%d\r\n" % (key, len(data), flags, exptime, cas_unique)
        elif mode == b"S":
            head = b"ms %s %d F%d T%d\r\n" % (key, len(data), flags, exptime)
        else:
            head = b"ms %s %d F%d T%d M%s\r\n" % (key, len(data), flags, exptime, mode)
        self.conn.send(head + data + b"\r\n", META, cb)

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        self.conn.send(b"md " + key + (b" b\r\n" if base64 else b"\r\n"), META, cb)

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        """``mg key T<exptime>``: HD when touched, EN when missing."""
        self.conn.send(b"mg %s T%d\r\n" % (key, exptime), META, cb)

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        mode = b"" if incr else b" MD"
        self.conn.send(b"ma %s D%d v%s\r\n" % (key, delta, mode), META, cb)

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        """A client's meta command as written. A quiet one is followed by ``mn`` so it always
        gets exactly one answer on the pipeline (possibly "nothing") and never stalls it."""
        payload = line + b"\r\n" + data if data is not None else line + b"\r\n"
        if quiet:
            self.conn.send(payload + b"mn\r\n", QUIET, cb)
        else:
            self.conn.send(payload, META, cb)

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        """A plain text command (stats, version, flush_all, verbosity)."""
        self.conn.send(line + b"\r\n", LINES if multiline else LINE, cb)

    def close(self) -> None:
        """Every request in flight on an owned connection is answered (BackendError) as it closes."""
        if self.owned:
            self.conn.close()
