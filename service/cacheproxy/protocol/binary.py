"""memcached binary protocol, sans-IO: a request parser and response-frame encoders.

The parser is fed raw client bytes and hands back :class:`BinaryRequest` objects; it never
touches a socket. Its job is to behave *exactly* like memcached 1.6.18's ``proto_bin.c`` on
every byte stream, malformed ones included, because binary clients depend on those answers:

* requests are validated in memcached's order (body-length sanity → key length → per-opcode
  extras/key/body rules) and get memcached's status and error text;
* after an error that makes memcached close the connection, the parser sets :attr:`closed`
  and emits nothing more; a wrong magic byte closes silently;
* an unknown opcode or a store whose value is too large is answered and its body *skipped
  incrementally* (memcached's "swallow"), never buffered, so a claimed 4 GB body costs
  nothing; the quirks of that swallow (an unknown opcode swallows ``bodylen`` bytes *after*
  its key and extras; a negative 32-bit value length swallows nothing) are reproduced;
* memcached reads the fixed part of a request (header, extras, key) into a 16 KB buffer and
  drops the connection when it does not fit; so does this parser, which bounds its memory to
  one such buffer or one value under the item size limit.

Responses are built by :func:`frame` / :func:`error_frame`; :mod:`.binary_meta` maps requests
to meta commands and meta replies back to frames.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from .limits import DEFAULT_ITEM_SIZE, ITEM_HEADER, KEY_MAX_LENGTH, READ_BUFFER_SIZE, item_fits

REQUEST_MAGIC = 0x80
RESPONSE_MAGIC = 0x81
HEADER = struct.Struct(">BBHBBHIIQ")  # magic opcode keylen extlen datatype vbucket/status bodylen opaque cas
HEADER_SIZE = HEADER.size  # 24


class Op(IntEnum):
    GET = 0x00
    SET = 0x01
    ADD = 0x02
    REPLACE = 0x03
    DELETE = 0x04
    INCREMENT = 0x05
    DECREMENT = 0x06
    QUIT = 0x07
    FLUSH = 0x08
    GETQ = 0x09
    NOOP = 0x0A
    VERSION = 0x0B
    GETK = 0x0C
    GETKQ = 0x0D
    APPEND = 0x0E
    PREPEND = 0x0F
    STAT = 0x10
    SETQ = 0x11
    ADDQ = 0x12
    REPLACEQ = 0x13
    DELETEQ = 0x14
    INCREMENTQ = 0x15
    DECREMENTQ = 0x16
    QUITQ = 0x17
    FLUSHQ = 0x18
    APPENDQ = 0x19
    PREPENDQ = 0x1A
    TOUCH = 0x1C
    GAT = 0x1D
    GATQ = 0x1E
    SASL_LIST_MECHS = 0x20
    SASL_AUTH = 0x21
    SASL_STEP = 0x22
    GATK = 0x23
    GATKQ = 0x24
    GETE = 0x40  # Netflix Rend extension: get whose extras carry flags + remaining TTL
    GETEQ = 0x41


class Status(IntEnum):
    SUCCESS = 0x00
    KEY_ENOENT = 0x01
    KEY_EEXISTS = 0x02
    E2BIG = 0x03
    EINVAL = 0x04
    NOT_STORED = 0x05
    DELTA_BADVAL = 0x06
    AUTH_ERROR = 0x20
    AUTH_CONTINUE = 0x21
    UNKNOWN_COMMAND = 0x81
    ENOMEM = 0x82


# memcached's write_bin_error() default texts.
ERROR_TEXT: dict[int, bytes] = {
    Status.ENOMEM: b"Out of memory",
    Status.UNKNOWN_COMMAND: b"Unknown command",
    Status.KEY_ENOENT: b"Not found",
    Status.EINVAL: b"Invalid arguments",
    Status.KEY_EEXISTS: b"Data exists for key.",
    Status.E2BIG: b"Too large.",
    Status.DELTA_BADVAL: b"Non-numeric server-side value for incr or decr",
    Status.NOT_STORED: b"Not stored.",
    Status.AUTH_ERROR: b"Auth failure.",
}

# Quiet opcode -> the command it is a quiet form of (memcached folds them the same way).
QUIET_BASE: dict[int, int] = {
    Op.GETQ: Op.GET,
    Op.GETKQ: Op.GETK,
    Op.SETQ: Op.SET,
    Op.ADDQ: Op.ADD,
    Op.REPLACEQ: Op.REPLACE,
    Op.DELETEQ: Op.DELETE,
    Op.INCREMENTQ: Op.INCREMENT,
    Op.DECREMENTQ: Op.DECREMENT,
    Op.QUITQ: Op.QUIT,
    Op.FLUSHQ: Op.FLUSH,
    Op.APPENDQ: Op.APPEND,
    Op.PREPENDQ: Op.PREPEND,
    Op.GATQ: Op.GAT,
    Op.GATKQ: Op.GATK,
    Op.GETEQ: Op.GETE,
}

COMMAND_NAMES: dict[int, str] = {op: op.name.lower() for op in Op}

_STORE = frozenset({Op.SET, Op.ADD, Op.REPLACE})
_CONCAT = frozenset({Op.APPEND, Op.PREPEND})
_GET = frozenset({Op.GET, Op.GETK, Op.GETE})
_TOUCHING = frozenset({Op.TOUCH, Op.GAT, Op.GATK})
_ARITH = frozenset({Op.INCREMENT, Op.DECREMENT})
_FLAGS_EXPTIME = struct.Struct(">II")
_U32 = struct.Struct(">I")
_INCR = struct.Struct(">QQI")  # delta, initial, expiration
_INT32_WRAP = 1 << 32
_SASL_EXCHANGE = frozenset({Op.SASL_AUTH, Op.SASL_STEP})
_BEFORE_AUTH = frozenset({Op.SASL_LIST_MECHS, Op.SASL_AUTH, Op.SASL_STEP, Op.VERSION})  # memcached -S
SASL_MECH_MAX_LENGTH = 32


class BinaryRequest:
    """One parsed request, or one request memcached would answer with an error.

    ``command`` is the opcode with quiet forms folded (GETQ -> GET); ``quiet`` says whether
    successes (and get misses) are to be answered with nothing. When ``error`` holds a frame
    the request must not reach a backend: that frame is the whole answer (``too_large`` Set
    requests are the one exception, see :mod:`.binary_meta`). ``close`` means memcached closes
    the connection after writing this request's answer.
    """

    __slots__ = (
        "cas",
        "close",
        "command",
        "delta",
        "error",
        "exptime",
        "flags",
        "initial",
        "key",
        "opaque",
        "opcode",
        "quiet",
        "too_large",
        "value",
    )

    def __init__(
        self,
        opcode: int,
        opaque: int = 0,
        cas: int = 0,
        key: bytes = b"",
        value: bytes = b"",
        *,
        flags: int = 0,
        exptime: int = 0,
        delta: int = 0,
        initial: int = 0,
        error: bytes | None = None,
        close: bool = False,
        too_large: bool = False,
    ) -> None:
        self.opcode = opcode
        self.command = QUIET_BASE.get(opcode, opcode)
        self.quiet = opcode in QUIET_BASE
        self.opaque, self.cas, self.key, self.value = opaque, cas, key, value
        self.flags, self.exptime, self.delta, self.initial = flags, exptime, delta, initial
        self.error, self.close, self.too_large = error, close, too_large

    @property
    def name(self) -> str:
        """Command name for metrics (``get``, ``set``, ... ``unknown``); quiet forms are folded."""
        return COMMAND_NAMES.get(self.command, "unknown")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name != "value")
        return f"BinaryRequest({fields}, value={self.value[:32]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinaryRequest):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Encoders


def frame(
    opcode: int,
    opaque: int,
    *,
    status: int = 0,
    extras: bytes = b"",
    key: bytes = b"",
    value: bytes = b"",
    cas: int = 0,
) -> bytes:
    """One response packet exactly as memcached's add_bin_header() lays it out."""
    header = HEADER.pack(
        RESPONSE_MAGIC,
        opcode,
        len(key),
        len(extras),
        0,
        status,
        len(extras) + len(key) + len(value),
        opaque,
        cas,
    )
    return b"".join((header, extras, key, value))


def error_frame(opcode: int, opaque: int, status: int, text: bytes | None = None) -> bytes:
    """An error packet with memcached's text for STATUS (or TEXT), no extras, CAS 0."""
    return frame(opcode, opaque, status=status, value=ERROR_TEXT[status] if text is None else text)


def miss_frame(request: BinaryRequest) -> bytes:
    """A get-family miss: GETK/GATK echo the key (no text), the others say 'Not found'."""
    if request.command in (Op.GETK, Op.GATK):
        return frame(request.opcode, request.opaque, status=Status.KEY_ENOENT, key=request.key)
    return error_frame(request.opcode, request.opaque, Status.KEY_ENOENT)


def get_hit_frame(
    request: BinaryRequest, flags: int, value: bytes, cas: int, ttl: int | None = None
) -> bytes:
    """A get/gat/touch hit: flags extras (plus TTL for GetE), the key for K variants, the value."""
    command = request.command
    extras = _FLAGS_EXPTIME.pack(flags, ttl or 0) if command == Op.GETE else _U32.pack(flags)
    key = request.key if command in (Op.GETK, Op.GATK) else b""
    if command == Op.TOUCH:
        value = b""
    return frame(request.opcode, request.opaque, extras=extras, key=key, value=value, cas=cas)


def stat_frame(opaque: int, key: bytes = b"", value: bytes = b"") -> bytes:
    """One STAT packet (an empty key and value terminates the listing), as append_bin_stats()."""
    return frame(Op.STAT, opaque, key=key, value=value)


# ---------------------------------------------------------------------------------------------
# Parser


def item_too_large(nkey: int, flags: int, vlen: int, max_item_size: int) -> bool:
    """memcached's item_size_ok() negated, with its C int arithmetic for the value length."""
    nbytes = _to_int32(vlen + 2)
    if nbytes < 2:
        return True
    return not item_fits(nkey, flags, nbytes, max_item_size)


def _to_int32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - _INT32_WRAP if n >= 0x80000000 else n


class BinaryParser:
    """Incremental request parser for one binary connection (feed bytes, get requests).

    ``feed`` keeps partial frames across calls; any split of a byte stream yields the same
    requests. Once :attr:`closed` is set (memcached would close the connection) further input
    is ignored; write the answers already returned, then close.
    """

    def __init__(self, max_item_size: int = DEFAULT_ITEM_SIZE, *, sasl: bool = False) -> None:
        self.max_item_size = max_item_size
        self.closed = False
        # SASL (memcached -S, see .sasl): SASL requests are parsed, not refused, and until the
        # session sets ``authenticated`` every other command but VERSION is refused and closes.
        # Parsing pauses after each SASL request until the session has answered it and calls
        # :meth:`resume`, since the answer decides how the next request is read.
        self.sasl = sasl
        self.authenticated = not sasl
        self._paused = False
        self._buf = bytearray()
        self._skip = 0  # body bytes still to swallow
        self._value_for: tuple | None = None  # header fields of a store waiting for its value

    @property
    def buffered(self) -> int:
        """Bytes held for a partial request (bounded: 16 KB or one value under the size limit)."""
        return len(self._buf)

    def feed(self, data: bytes | memoryview) -> list[BinaryRequest]:
        if self.closed:
            return []
        if self._paused:
            self._buf += data
            return []
        if self._skip:
            if self._buf:  # only possible if data arrived before the skip was known
                dropped = min(self._skip, len(self._buf))
                del self._buf[:dropped]
                self._skip -= dropped
            if self._skip:
                dropped = min(self._skip, len(data))
                self._skip -= dropped
                data = memoryview(data)[dropped:]
        if not data:
            return []
        self._buf += data
        return self._parse()

    def resume(self) -> list[BinaryRequest]:
        """After a SASL request has been answered: the requests parsed since."""
        self._paused = False
        return [] if self.closed else self._parse()

    def _parse(self) -> list[BinaryRequest]:
        out: list[BinaryRequest] = []
        buf = self._buf
        view = memoryview(buf)
        pos = 0
        try:
            while not self.closed:
                avail = len(buf) - pos
                if self._value_for is not None:
                    fields, vlen = self._value_for
                    if avail < vlen:
                        break
                    out.append(self._store_request(fields, bytes(view[pos : pos + vlen])))
                    pos += vlen
                    self._value_for = None
                    if self.sasl and fields[0] in _SASL_EXCHANGE:
                        self._paused = True
                        break
                    continue
                if avail < HEADER_SIZE:
                    break
                magic, opcode, keylen, extlen, _dt, _vb, bodylen, opaque, cas = HEADER.unpack_from(view, pos)
                if magic != REQUEST_MAGIC:
                    self.closed = True  # memcached: "Invalid magic", conn_closing, no answer
                    break
                fixed = HEADER_SIZE + extlen + keylen
                if fixed > READ_BUFFER_SIZE:
                    if avail >= READ_BUFFER_SIZE:
                        self.closed = True  # read buffer full: memcached drops the connection
                    break
                if avail < fixed:
                    break
                start = pos + HEADER_SIZE
                extras = bytes(view[start : start + extlen])
                key = bytes(view[start + extlen : pos + fixed])
                pos += fixed
                request = self._dispatch(opcode, keylen, extlen, bodylen, opaque, cas, extras, key)
                if request is not None:
                    out.append(request)
                    if request.close:
                        self.closed = True
                    elif self.sasl and request.error is None and opcode == Op.SASL_LIST_MECHS:
                        self._paused = True
                        break
                if self._skip:
                    dropped = min(self._skip, len(buf) - pos)
                    pos += dropped
                    self._skip -= dropped
        finally:
            view.release()
            if self.closed:
                buf.clear()
                self._skip = 0
            else:
                del buf[:pos]
        return out

    def _dispatch(
        self,
        opcode: int,
        keylen: int,
        extlen: int,
        bodylen: int,
        opaque: int,
        cas: int,
        extras: bytes,
        key: bytes,
    ) -> BinaryRequest | None:
        """memcached's dispatch_bin_command(): validate, then build the request or its error."""
        if keylen > bodylen or keylen + extlen > bodylen:
            return self._error(opcode, opaque, Status.UNKNOWN_COMMAND, close=True)
        if not self.authenticated and opcode not in _BEFORE_AUTH:
            return self._error(opcode, opaque, Status.AUTH_ERROR, close=True)
        if keylen > KEY_MAX_LENGTH:
            return self._error(opcode, opaque, Status.EINVAL, close=True)
        command = QUIET_BASE.get(opcode, opcode)
        valid: bool
        if command in (Op.VERSION, Op.NOOP, Op.QUIT):
            valid = extlen == 0 and keylen == 0 and bodylen == 0
            if valid:
                return BinaryRequest(opcode, opaque, cas, close=command == Op.QUIT)
        elif command == Op.FLUSH:
            valid = keylen == 0 and bodylen == extlen and extlen in (0, 4)
            if valid:
                exptime = _U32.unpack(extras)[0] if extlen == 4 else 0
                return BinaryRequest(opcode, opaque, cas, exptime=exptime)
        elif command in _STORE:
            valid = extlen == 8 and keylen != 0 and bodylen >= keylen + 8
            if valid:
                flags, exptime = _FLAGS_EXPTIME.unpack(extras)
                return self._expect_value(opcode, opaque, cas, key, flags, exptime, bodylen - keylen - extlen)
        elif command in _GET:
            valid = extlen == 0 and bodylen == keylen and keylen > 0
            if valid:
                return BinaryRequest(opcode, opaque, cas, key)
        elif command == Op.DELETE:
            valid = keylen > 0 and extlen == 0 and bodylen == keylen
            if valid:
                return BinaryRequest(opcode, opaque, cas, key)
        elif command in _ARITH:
            valid = keylen > 0 and extlen == 20 and bodylen == keylen + extlen
            if valid:
                delta, initial, exptime = _INCR.unpack(extras)
                return BinaryRequest(opcode, opaque, cas, key, delta=delta, initial=initial, exptime=exptime)
        elif command in _CONCAT:
            valid = keylen > 0 and extlen == 0
            if valid:
                return self._expect_value(opcode, opaque, cas, key, 0, 0, bodylen - keylen)
        elif command == Op.STAT:
            valid = extlen == 0  # body bytes beyond the key are left unread, as memcached does
            if valid:
                return BinaryRequest(opcode, opaque, cas, key)
        elif command in _TOUCHING:
            valid = extlen == 4 and keylen != 0  # likewise: trailing body bytes are not consumed
            if valid:
                return BinaryRequest(opcode, opaque, cas, key, exptime=_U32.unpack(extras)[0])
        elif command == Op.SASL_LIST_MECHS:  # SASL off: "Unknown command" when well formed
            valid = extlen == 0 and keylen == 0 and bodylen == 0
            if valid:
                if self.sasl:
                    return BinaryRequest(opcode, opaque, cas)
                return self._error(opcode, opaque, Status.UNKNOWN_COMMAND)
        elif command in _SASL_EXCHANGE:
            valid = extlen == 0 and keylen != 0
            if valid:
                vlen = bodylen - keylen
                if not self.sasl:
                    self._skip = vlen
                    return self._error(opcode, opaque, Status.UNKNOWN_COMMAND)
                if keylen > SASL_MECH_MAX_LENGTH:
                    self._skip = vlen
                    return self._error(opcode, opaque, Status.EINVAL)
                # memcached reads the data into an item; one that would be chunked is refused
                if ITEM_HEADER + keylen + 1 + vlen + 2 > self.max_item_size // 2:
                    self._skip = vlen
                    return self._error(opcode, opaque, Status.ENOMEM)
                self._value_for = ((opcode, opaque, cas, key, 0, 0), vlen)
                return None
        else:
            # memcached swallows BODYLEN bytes *after* the key and extras it already consumed.
            self._skip = bodylen
            return self._error(opcode, opaque, Status.UNKNOWN_COMMAND)
        return self._error(opcode, opaque, Status.EINVAL, close=True)

    def _expect_value(
        self, opcode: int, opaque: int, cas: int, key: bytes, flags: int, exptime: int, vlen: int
    ) -> BinaryRequest | None:
        vlen = _to_int32(vlen)
        if item_too_large(len(key), flags, vlen, self.max_item_size):
            self._skip = max(vlen, 0)
            is_set = QUIET_BASE.get(opcode, opcode) == Op.SET
            return BinaryRequest(
                opcode,
                opaque,
                cas,
                key,
                flags=flags,
                exptime=exptime,
                error=error_frame(opcode, opaque, Status.E2BIG),
                too_large=is_set,
            )
        self._value_for = ((opcode, opaque, cas, key, flags, exptime), vlen)
        return None

    @staticmethod
    def _store_request(fields: tuple, value: bytes) -> BinaryRequest:
        opcode, opaque, cas, key, flags, exptime = fields
        return BinaryRequest(opcode, opaque, cas, key, value, flags=flags, exptime=exptime)

    @staticmethod
    def _error(opcode: int, opaque: int, status: int, *, close: bool = False) -> BinaryRequest:
        return BinaryRequest(opcode, opaque, error=error_frame(opcode, opaque, status), close=close)
