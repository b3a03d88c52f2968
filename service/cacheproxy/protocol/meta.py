"""Sans-IO reader for what a memcached backend answers to the proxy.

The proxy speaks the meta protocol to its backends (plus a few text commands: stats, version,
flush_all, verbosity). Each request sent records the *shape* of its answer, and this module cuts
the byte stream back into answers by those shapes, in order.
"""

from __future__ import annotations

from typing import Final

# Answer shapes.
META: Final = 0  # one meta answer: a line, plus a data block after "VA <size> ..."
QUIET: Final = 1  # a quiet meta command followed by "mn": an optional meta answer, then "MN"
LINE: Final = 2  # one text line (version, flush_all, verbosity)
LINES: Final = 3  # text lines up to "END" (stats), or one line: an error, "RESET" or "OK"
TEXT_STORE: Final = 4  # the answer to a text storage command: ``STORED``, ``NOT_STORED``...
TEXT_VALUE: Final = 5  # the answer to ``mg <key> v f`` asked for a text ``get``: see read_text_value

_ERRORS: Final = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
# One-line answers to ``stats`` subcommands: ``stats reset``, ``stats detail on|off``.
_STATS_ONE_LINE: Final = (b"RESET", b"OK")
VA: Final = b"VA"


class MetaResponse:
    """One backend answer: ``code`` is its first token, ``raw`` the exact bytes received."""

    __slots__ = ("_raw", "code", "line", "value")

    def __init__(self, code: bytes, line: bytes, value: bytes | None, raw: bytes | None = None) -> None:
        self.code, self.line, self.value, self._raw = code, line, value, raw

    @property
    def raw(self) -> bytes:
        """The answer's bytes; for a value answer rebuilt on demand (text gets never need it)."""
        raw = self._raw
        if raw is None:
            raw = self._raw = self.line + b"\r\n" + (self.value + b"\r\n" if self.value is not None else b"")
        return raw

    def flag(self, name: bytes) -> bytes | None:
        """The value of a returned flag token (``f``, ``c``, ``t``, ``k``, ``O`` ...), if present."""
        for token in self.line.split(b" ")[1:]:
            if token[:1] == name:
                return token[1:]
        return None

    def __repr__(self) -> str:
        return f"MetaResponse({self.raw!r})"


def code_of(resp: object) -> bytes | None:
    """The answer code of a MetaResponse; None for a BackendError (or a quiet "no answer")."""
    return getattr(resp, "code", None)


def read_meta(buf: bytes, pos: int) -> tuple[MetaResponse, int] | None:
    """One meta answer starting at POS, and the position after it; None if incomplete."""
    nl = buf.find(b"\n", pos)
    if nl < 0:
        return None
    line = buf[pos:nl - 1] if buf[nl - 1] == 0x0D else buf[pos:nl]
    if buf.startswith(b"VA ", pos):  # a hit: the common answer, without slicing out its code
        end = line.find(b" ", 3)
        stop = nl + 3 + int(line[3:] if end < 0 else line[3:end])
        if stop > len(buf):
            return None
        return MetaResponse(VA, line, buf[nl + 1:stop - 2]), stop
    sp = line.find(b" ")
    code = line if sp < 0 else line[:sp]
    if code == VA:  # every "VA <size> ..." was read above: this one has no size
        raise ValueError(f"VA without a size: {line!r}")
    return MetaResponse(code, line, None, buf[pos:nl + 1]), nl + 1


def read_quiet(buf: bytes, pos: int) -> tuple[MetaResponse | None, int] | None:
    """An optional meta answer followed by ``MN``: (answer or None, position after MN)."""
    first = read_meta(buf, pos)
    if first is None:
        return None
    response, pos = first
    if response.code == b"MN":
        return None, pos
    second = read_meta(buf, pos)
    if second is None:
        return None
    return response, second[1]


def read_line(buf: bytes, pos: int) -> tuple[MetaResponse, int] | None:
    nl = buf.find(b"\n", pos)
    if nl < 0:
        return None
    raw = buf[pos:nl + 1]
    line = raw.rstrip(b"\r\n")
    return MetaResponse(line.split(b" ", 1)[0], line, None, raw), nl + 1


def read_lines(buf: bytes, pos: int) -> tuple[MetaResponse, int] | None:
    """Text lines up to and including ``END``, or a single line: an error, or the ``RESET`` / ``OK``
    that ``stats reset`` and ``stats detail on|off`` answer. Every line of a multi-line stats answer
    starts ``STAT``, ``ITEM`` or ``PREFIX``, so none of these can end one early."""
    start = pos
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        line = buf[pos:nl].rstrip(b"\r")
        first = pos == start
        pos = nl + 1
        if line == b"END" or line.startswith(_ERRORS) or (first and line in _STATS_ONE_LINE):
            code = b"END" if line == b"END" else line.split(b" ", 1)[0]
            return MetaResponse(code, line, None, buf[start:pos]), pos


def read_text_store(buf: bytes, pos: int) -> tuple[bytes | MetaResponse, int] | None:
    """memcached's answer to a text storage command, as the bytes a text client is sent (one of
    :data:`STORE_RESULTS`); anything else (an error line) comes back as a MetaResponse."""
    nl = buf.find(b"\n", pos)
    if nl < 0:
        return None
    line = buf[pos:nl + 1]
    if line in STORE_RESULTS:
        return line, nl + 1
    return read_line(buf, pos)


def read_text_value(buf: bytes, pos: int) -> tuple[bytes | MetaResponse, int] | None:
    """The answer to ``mg <key> v f`` asked for a text ``get``. A hit (``VA <size> f<flags>``) comes
    back as the bytes that follow ``VALUE <key> `` in the text answer, ``<flags> <size>\r\n<data>\r\n
    END\r\n``, built with one copy; anything else as :func:`read_meta` reads it."""
    if len(buf) < pos + 3 or buf[pos] != 0x56 or buf[pos + 1] != 0x41 or buf[pos + 2] != 0x20:  # "VA "
        return read_meta(buf, pos)
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    if buf[nl - 1] > 0x39:  # not "f<digits>" last: lease tokens (W/X/Z) follow, read it in full
        return read_meta(buf, pos)
    sp = buf.find(b" f", pos + 3, nl)
    size = buf[pos + 3:sp]
    stop = nl + 4 + int(size)
    if stop > len(buf):
        return None
    return b"%b %b\r\n%bEND\r\n" % (buf[sp + 2:nl], size, buf[nl + 2:stop]), stop


STORE_RESULTS: Final = {b"STORED\r\n": "stored", b"NOT_STORED\r\n": "not_stored", b"EXISTS\r\n": "exists",
                        b"NOT_FOUND\r\n": "not_found"}  # a storage command's answer → its metric result
READERS: Final = {META: read_meta, QUIET: read_quiet, LINE: read_line, LINES: read_lines,
                  TEXT_STORE: read_text_store, TEXT_VALUE: read_text_value}
