"""Rendering of text and meta answers from the backend's meta answers (the text side of what
:mod:`~cacheproxy.protocol.binary_meta` does for binary clients): ``VA`` becomes ``VALUE``,
``HD`` becomes ``STORED`` or ``DELETED`` or ``TOUCHED`` by command, and so on."""

from __future__ import annotations

from typing import Final

from .meta import MetaResponse

AnswerTable = dict[bytes | None, tuple[bytes, str]]  # meta code → (text answer, metric result)
STORE_ANSWERS: Final[AnswerTable] = {b"HD": (b"STORED\r\n", "stored"), b"NS": (b"NOT_STORED\r\n", "not_stored"),
                                     b"EX": (b"EXISTS\r\n", "exists"), b"NF": (b"NOT_FOUND\r\n", "not_found")}
DELETE_ANSWERS: Final[AnswerTable] = {b"HD": (b"DELETED\r\n", "deleted"), b"NF": (b"NOT_FOUND\r\n", "not_found")}
TOUCH_ANSWERS: Final[AnswerTable] = {b"HD": (b"TOUCHED\r\n", "touched"), b"EN": (b"NOT_FOUND\r\n", "not_found")}
ARITH_ANSWERS: Final[AnswerTable] = {b"NF": (b"NOT_FOUND\r\n", "not_found")}
META_RESULTS: Final[dict[bytes | None, str]] = {b"VA": "hit", b"HD": "ok", b"EN": "miss", b"NF": "not_found",
                                         b"NS": "not_stored", b"EX": "exists", b"MN": "ok", b"ME": "ok"}
NO_TABLE: Final[AnswerTable] = {}  # an Answer answered by one_get, never looked up
END: Final = b"END\r\n"


def value_line(key: bytes, resp: MetaResponse, cas: bool, end: bytes = b"") -> bytes:
    """``VA <size> f<flags> [c<cas>]`` + data → ``VALUE <key> <flags> <size> [<cas>]`` + data (+ END).
    The flags come in the order the proxy asked for them (``mg <key> v f [c] [t]``)."""
    tokens, value = resp.line.split(b" "), resp.value
    if cas:
        return b"VALUE %b %b %b %b\r\n%b\r\n%b" % (key, tokens[2][1:], tokens[1], tokens[3][1:], value, end)  # type: ignore[str-format]
    return b"VALUE %b %b %b\r\n%b\r\n%b" % (key, tokens[2][1:], tokens[1], value, end)  # type: ignore[str-format]
