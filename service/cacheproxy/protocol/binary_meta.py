"""Binary requests → memcached meta/text commands, and their replies → binary response frames.

Pure functions, no IO. The proxy serves binary clients from a memcached that it talks to in
the meta protocol, so for every binary request it needs the command to send (:func:`to_meta`)
and, once the backend has answered, the exact frame memcached itself would have written to a
binary client (:func:`from_meta`), or nothing for quiet successes and quiet get misses.

Choices that make the answers byte-exact with memcached 1.6.18:

* every command is sent *without* the meta ``q`` flag, so each gets exactly one reply and the
  backend pipeline stays in lock-step; quiet semantics are applied here;
* stores always use ``ms`` with ``M<mode>``; Add/Replace/Set carrying a CAS are all sent as a
  plain CAS store (memcached's binary code turns any store with a CAS into NREAD_CAS, while
  meta ``ME`` + ``C`` would behave as a plain add);
* a Set whose value is too large deletes the key (memcached unlinks the stale item) and
  answers "Too large."; too-large Add/Replace/Append/Prepend never reach the backend;
* keys with bytes the text tokenizer cannot carry are sent base64-encoded with ``b``;
* Version/Stat/Flush use the text commands ``version``, ``stats [group]``, ``flush_all
  [delay]``; Noop is ``mn`` so it is answered after everything pipelined before it;
* exptimes above 2^31-1 (absolute times past 2038; meta takes int32) are clamped to 2^31-1.
"""

from __future__ import annotations

import base64
import struct

from .binary import (
    BinaryRequest,
    Op,
    Status,
    error_frame,
    frame,
    get_hit_frame,
    miss_frame,
    stat_frame,
)
from .limits import KEY_MAX_LENGTH
from .meta import LINE, LINES, META, MetaResponse

INT32_MAX = 0x7FFFFFFF
NO_AUTOVIVIFY = 0xFFFFFFFF
_U64 = struct.Struct(">Q")


class MetaCall:
    """The bytes to write to the backend (None: answered locally, ``from_meta(request, None)``)
    and the shape of the backend's answer (:data:`~cacheproxy.protocol.meta.META`, ``LINE`` or
    ``LINES``), the same vocabulary the backend connections read answers by."""

    __slots__ = ("command", "shape")

    def __init__(self, command: bytes | None, shape: int) -> None:
        self.command, self.shape = command, shape

    def __repr__(self) -> str:
        return f"MetaCall({self.command!r}, {self.shape})"


LOCAL = MetaCall(None, META)

_STORE_MODE: dict[int, bytes] = {Op.SET: b"MS", Op.ADD: b"ME", Op.REPLACE: b"MR", Op.APPEND: b"MA", Op.PREPEND: b"MP"}
_GET_FLAGS: dict[int, bytes] = {
    Op.GET: b" v f c",
    Op.GETK: b" v f c",
    Op.GETE: b" v f c t",
    Op.GAT: b" v f c",
    Op.GATK: b" v f c",
    Op.TOUCH: b" f c",
}
_NOT_STORED_STATUS: dict[int, Status] = {Op.ADD: Status.KEY_EEXISTS, Op.REPLACE: Status.KEY_ENOENT}
_STATS_GROUPS = frozenset({b"items", b"slabs", b"sizes", b"sizes_enable", b"sizes_disable"})
_TEXT_UNSAFE = frozenset(range(0x21)) | {0x7F}  # whitespace and control bytes
_TOKENIZER_UNSAFE = frozenset(b"\x00\n ")  # what memcached's text tokenizer cannot carry


def meta_key(key: bytes) -> tuple[bytes, bool] | None:
    """The key token for a meta command and whether it needs the ``b`` (base64) flag.

    None when the key cannot be expressed at all: memcached checks the 250-byte limit on the
    *encoded* token, so a long key with unsafe bytes may not fit.
    """
    if not _TEXT_UNSAFE.intersection(key):
        return key, False
    encoded = base64.b64encode(key)
    if len(encoded) <= KEY_MAX_LENGTH:
        return encoded, True
    if not _TOKENIZER_UNSAFE.intersection(key) and not key.endswith(b"\r"):
        return key, False  # tabs/control bytes survive memcached's tokenizer
    return None


def _ttl(exptime: int) -> int:
    return min(exptime, INT32_MAX)


# ---------------------------------------------------------------------------------------------
# Requests → backend commands


def to_meta(request: BinaryRequest) -> MetaCall:
    """The command that answers REQUEST, or LOCAL when the answer needs no backend."""
    if request.error is not None:
        if request.too_large:
            return _keyed(request, b"md", b"")
        return LOCAL
    command = request.command
    if command in _GET_FLAGS:
        flags = _GET_FLAGS[command]
        if command in (Op.GAT, Op.GATK, Op.TOUCH):
            flags += b" T%d" % _ttl(request.exptime)
        return _keyed(request, b"mg", flags)
    if command in _STORE_MODE:
        return _store(request)
    if command == Op.DELETE:
        return _keyed(request, b"md", b" C%d" % request.cas if request.cas else b"")
    if command in (Op.INCREMENT, Op.DECREMENT):
        flags = (
            b" N%d J%d" % (_ttl(request.exptime), request.initial)
            if request.exptime != NO_AUTOVIVIFY
            else b""
        )
        flags += b" D%d M%s v c" % (request.delta, b"I" if command == Op.INCREMENT else b"D")
        if request.cas:
            flags += b" C%d" % request.cas
        return _keyed(request, b"ma", flags)
    if command == Op.NOOP:
        return MetaCall(b"mn\r\n", META)
    if command == Op.VERSION:
        return MetaCall(b"version\r\n", LINE)
    if command == Op.FLUSH:
        delay = _ttl(request.exptime)
        return MetaCall(b"flush_all %d\r\n" % delay if delay else b"flush_all\r\n", LINE)
    if command == Op.STAT:
        return _stats(request.key)
    return LOCAL  # Quit


def _keyed(request: BinaryRequest, verb: bytes, flags: bytes, data: bytes | None = None) -> MetaCall:
    encoded = meta_key(request.key)
    if encoded is None:
        return LOCAL
    token, is_b64 = encoded
    line = b"%s %s%s%s\r\n" % (verb, token, flags, b" b" if is_b64 else b"")
    if data is not None:
        line = b"".join((line, data, b"\r\n"))
    return MetaCall(line, META)


def _store(request: BinaryRequest) -> MetaCall:
    command = request.command
    mode = _STORE_MODE[command]
    if request.cas and command in (Op.SET, Op.ADD, Op.REPLACE):
        mode = b"MS"  # binary: any store with a CAS is a CAS store
    flags = b" %d" % len(request.value)
    if command in (Op.SET, Op.ADD, Op.REPLACE):
        flags += b" F%d T%d" % (request.flags, _ttl(request.exptime))
    flags += b" %s c" % mode
    if request.cas:
        flags += b" C%d" % request.cas
    return _keyed(request, b"ms", flags, request.value)


def _stats(group: bytes) -> MetaCall:
    """memcached's process_bin_stat() matching (prefixes for reset/settings/detail)."""
    if not group:
        return MetaCall(b"stats\r\n", LINES)
    if group.startswith(b"reset"):
        return MetaCall(b"stats reset\r\n", LINE)
    if group.startswith(b"settings"):
        return MetaCall(b"stats settings\r\n", LINES)
    if group.startswith(b"detail"):
        rest = group[6:]
        if rest.startswith(b" dump"):
            return MetaCall(b"stats detail dump\r\n", LINES)
        if rest.startswith(b" on"):
            return MetaCall(b"stats detail on\r\n", LINE)
        if rest.startswith(b" off"):
            return MetaCall(b"stats detail off\r\n", LINE)
        return LOCAL
    if group in _STATS_GROUPS:
        return MetaCall(b"stats %s\r\n" % group, LINES)
    return LOCAL


# ---------------------------------------------------------------------------------------------
# Backend replies → binary frames


def _token(tokens: list[bytes], flag: bytes, default: int = 0) -> int:
    for token in tokens:
        if token[:1] == flag:
            return int(token[1:])
    return default


def from_meta(request: BinaryRequest, reply: MetaResponse | None) -> bytes:
    """The bytes memcached would write to a binary client for REQUEST, given the backend's REPLY
    (read by the shape ``to_meta(request)`` named; None when the request was answered locally).
    Returns b"" when memcached would stay silent (quiet success, quiet get miss, QuitQ).
    """
    if request.error is not None:
        return request.error
    command = request.command
    if command == Op.QUIT:
        return b"" if request.quiet else frame(request.opcode, request.opaque)
    if command == Op.STAT:
        return _from_stats(request, reply.raw if reply is not None else b"")
    if command in (Op.VERSION, Op.FLUSH):
        return _from_line(request, reply.raw if reply is not None else b"")
    if reply is None:  # a keyed command whose key meta cannot express
        return error_frame(request.opcode, request.opaque, Status.EINVAL)
    code, value = reply.code, reply.value
    if code in (b"CLIENT_ERROR", b"SERVER_ERROR", b"ERROR"):
        return _from_error(request, code, reply.line.partition(b" ")[2])
    tokens = reply.line.split()[2 if code == b"VA" else 1:]  # the returned flags
    if command in _GET_FLAGS:
        return _from_get(request, code, tokens, value)
    if command in _STORE_MODE:
        return _from_store(request, code, tokens)
    if command == Op.DELETE:
        return _from_delete(request, code)
    if command in (Op.INCREMENT, Op.DECREMENT):
        return _from_arith(request, code, tokens, value)
    if command == Op.NOOP:
        return frame(request.opcode, request.opaque)
    raise ValueError(f"no meta mapping for opcode {request.opcode:#04x}")


def _success(request: BinaryRequest, cas: int = 0, value: bytes = b"") -> bytes:
    return b"" if request.quiet else frame(request.opcode, request.opaque, value=value, cas=cas)


def _error(request: BinaryRequest, status: int, text: bytes | None = None) -> bytes:
    return error_frame(request.opcode, request.opaque, status, text)


def _from_get(request: BinaryRequest, code: bytes, tokens: list[bytes], value: bytes | None) -> bytes:
    if code in (b"VA", b"HD"):
        ttl = _token(tokens, b"t", -1)
        return get_hit_frame(
            request, _token(tokens, b"f"), value or b"", _token(tokens, b"c"), ttl if ttl > 0 else 0
        )
    if code == b"EN":
        return b"" if request.quiet else miss_frame(request)
    return _unexpected(request, code)


def _from_store(request: BinaryRequest, code: bytes, tokens: list[bytes]) -> bytes:
    if code == b"HD":
        return _success(request, cas=_token(tokens, b"c"))
    if code == b"EX":
        return _error(request, Status.KEY_EEXISTS)
    if code == b"NF":
        return _error(request, Status.KEY_ENOENT)
    if code == b"NS":
        if request.cas:
            return _error(request, Status.NOT_STORED)
        status = _NOT_STORED_STATUS.get(request.command, Status.NOT_STORED)
        return _error(request, status)
    return _unexpected(request, code)


def _from_delete(request: BinaryRequest, code: bytes) -> bytes:
    if code == b"HD":
        return _success(request)
    if code == b"NF":
        return _error(request, Status.KEY_ENOENT)
    if code == b"EX":
        return _error(request, Status.KEY_EEXISTS)
    return _unexpected(request, code)


def _from_arith(request: BinaryRequest, code: bytes, tokens: list[bytes], value: bytes | None) -> bytes:
    if code == b"VA":
        return _success(request, cas=_token(tokens, b"c"), value=_U64.pack(int(value or b"0")))
    if code == b"NF":
        return _error(request, Status.KEY_ENOENT)
    if code == b"EX":
        return _error(request, Status.KEY_EEXISTS)
    if code == b"NS":
        return _error(request, Status.NOT_STORED)
    return _unexpected(request, code)


def _from_error(request: BinaryRequest, code: bytes, text: bytes) -> bytes:
    """Backend error lines → what memcached's binary code reports for the same condition."""
    if text.startswith(b"object too large"):
        return _error(request, Status.E2BIG)
    if text.startswith(b"cannot increment or decrement non-numeric"):
        return _error(request, Status.DELTA_BADVAL)
    if code == b"SERVER_ERROR" and text.startswith(b"out of memory"):
        if request.command in (Op.INCREMENT, Op.DECREMENT):
            return _error(request, Status.ENOMEM, b"Out of memory incrementing value")
        return _error(request, Status.ENOMEM, b"Out of memory allocating item")
    if code == b"SERVER_ERROR":
        return _error(request, Status.ENOMEM, text)
    return _error(request, Status.EINVAL)


def _unexpected(request: BinaryRequest, code: bytes) -> bytes:
    return _error(request, Status.EINVAL)


def _from_line(request: BinaryRequest, reply: bytes) -> bytes:
    line = reply.rstrip(b"\r\n")
    if request.command == Op.VERSION:
        if line.startswith(b"VERSION "):
            return frame(request.opcode, request.opaque, value=line[8:])
    elif line == b"OK":
        return _success(request)
    elif line == b"CLIENT_ERROR flush_all not allowed":
        return _error(request, Status.AUTH_ERROR)
    code, _, text = line.partition(b" ")
    return _from_error(request, code, text)


def _from_stats(request: BinaryRequest, reply: bytes) -> bytes:
    opaque = request.opaque
    group = request.key
    if not reply:  # answered locally: a group memcached's binary stats do not know
        return _error(request, Status.KEY_ENOENT)
    if group.startswith(b"detail"):
        if group[6:].startswith(b" dump"):
            return stat_frame(opaque, b"detailed", reply) + stat_frame(opaque)
        return stat_frame(opaque) if reply.startswith(b"OK") else _error(request, Status.KEY_ENOENT)
    if group.startswith(b"reset"):
        return stat_frame(opaque) if reply.startswith(b"RESET") else _error(request, Status.KEY_ENOENT)
    if not reply.startswith((b"STAT ", b"END\r\n")):
        code, _, text = reply.rstrip(b"\r\n").partition(b" ")
        return _from_error(request, code, text)
    out = []
    for line in reply.split(b"\r\n"):
        if line.startswith(b"STAT "):
            name, _, value = line[5:].partition(b" ")
            out.append(stat_frame(opaque, name, value))
        elif line == b"END":  # both come from memcached's add_stats(NULL) terminator
            out.append(stat_frame(opaque))
    return b"".join(out)
