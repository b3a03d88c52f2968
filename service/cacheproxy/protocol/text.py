"""Sans-IO parser for memcached's text and meta protocols, as memcached 1.6 parses them.

Bytes go in through :meth:`TextParser.feed`; :class:`~cacheproxy.protocol.requests.Request`
objects come out, in order. Malformed input becomes a :class:`Reply` carrying the exact bytes
memcached would have answered (``ERROR``, ``CLIENT_ERROR ...``), or a :class:`Close` where
memcached hangs up. The framing of data blocks follows memcached's rules exactly (which errors
consume the data block and which leave it to be parsed as a command), so the proxy stays in step
with any client, well-behaved or not. Nothing here is ever buffered beyond the item size limit:
an oversized data block is skipped as it streams in.
"""

from __future__ import annotations

from typing import Final

from .limits import DEFAULT_ITEM_SIZE, KEY_MAX_LENGTH, LINE_LIMIT, READ_BUFFER_SIZE, item_fits
from .longline import SHORT_TOKEN, short_number, shorten_meta
from .mset import refusal
from .numbers import safe_strtol, safe_strtoul, safe_strtoull
from .requests import (
    ADD,
    APPEND,
    CAS,
    PREPEND,
    REPLACE,
    SET,
    Arith,
    Close,
    Delete,
    Get,
    Meta,
    Passthrough,
    Quit,
    Reply,
    Request,
    Store,
    TooLarge,
    Touch,
)

MAX_TOKENS: Final = 24  # memcached's tokenizer limit, terminal token included
MFLAG_MAX_OPT_LENGTH: Final = 20
GET_LINE_LIMIT: Final = 1 << 20  # our own bound on a huge multiget line (memcached's is memory)
INT_MAX: Final = (1 << 31) - 1

ERROR: Final = b"ERROR\r\n"
BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK: Final = b"CLIENT_ERROR bad data chunk\r\n"
BAD_EXPTIME: Final = b"CLIENT_ERROR invalid exptime argument\r\n"
BAD_DELTA: Final = b"CLIENT_ERROR invalid numeric delta argument\r\n"
BAD_DELETE: Final = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
TOO_LARGE: Final = b"SERVER_ERROR object too large for cache\r\n"

_STORE_MODES: Final = {b"set": SET, b"add": ADD, b"replace": REPLACE, b"append": APPEND, b"prepend": PREPEND}
_GETS: Final = {b"get": (False, False), b"gets": (True, False), b"gat": (False, True), b"gats": (True, True),
                b"bget": (False, False)}
_META: Final = {b"mg", b"ms", b"md", b"ma", b"mn", b"me"}


def plain_get_key(line: bytes, end: int) -> bytes | None:
    """The key when ``LINE[:END]`` is exactly ``get <key>``: one key of 1-250 bytes, no space, no NUL
    (memcached would cut the line there); None otherwise. Tested byte by byte, not with a slice and
    ``find``: this runs for nearly every request (``find`` with a start parses its arguments), and
    ``int in bytes`` is a memchr where ``b"\0" in key`` raises and clears a TypeError inside CPython."""
    if not 4 < end <= 254 or line[0] != 0x67 or line[1] != 0x65 or line[2] != 0x74 or line[3] != 0x20:
        return None
    key = line[4:end]
    if 0x20 in key or 0x00 in key:
        return None
    return key


class _PendingData:
    """A command whose data block (``length`` bytes, CRLF included) has not fully arrived."""

    __slots__ = ("length", "make")

    def __init__(self, length: int, make) -> None:
        self.length, self.make = length, make


class TextParser:
    """Incremental parser for one text/meta client connection."""

    __slots__ = ("_buf", "_pending", "_swallow", "closed", "max_item_size")

    def __init__(self, max_item_size: int = DEFAULT_ITEM_SIZE) -> None:
        self.max_item_size = max_item_size
        self._buf = b""
        self._pending: _PendingData | None = None
        self._swallow = 0
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a request (bounded by the item size limit)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Request]:
        """Consume DATA; return every request now complete, in order."""
        if self.closed:
            return []
        buf = self._buf + data if self._buf else data
        out: list[Request] = []
        pos, end = 0, len(buf)
        while pos < end:
            if self._swallow:
                take = min(self._swallow, end - pos)
                self._swallow -= take
                pos += take
                continue
            pending = self._pending
            if pending is not None:
                stop = pos + pending.length
                if stop > end:
                    break
                self._pending = None
                block = buf[pos:stop]
                pos = stop
                request = pending.make(block)
                if request is not None:
                    out.append(request)
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if end - pos > LINE_LIMIT and not (end - pos <= GET_LINE_LIMIT and self._multiget(buf, pos)):
                    self.closed = True
                    out.append(Close("line too long"))
                    pos = end
                break
            if nl - pos >= READ_BUFFER_SIZE and not self._multiget(buf, pos):
                self.closed = True  # never whole in memcached's read buffer: closed however it arrives
                out.append(Close("line too long"))
                pos = end
                break
            line_end = nl - 1 if nl - pos > 1 and buf[nl - 1] == 0x0D else nl
            line = buf[pos:line_end]
            pos = nl + 1
            request = self._command(line)
            if request is not None:
                out.append(request)
                if isinstance(request, Close):
                    self.closed = True
                    pos = end
                    break
        self._buf = buf[pos:] if pos < end else b""
        return out

    def single_get(self, data: bytes) -> bytes | None:
        """The key, when DATA is exactly one whole ``get <key>\r\n`` and nothing is held from
        earlier reads: by far the most common read, answered without building request objects.
        None otherwise (then :meth:`feed` DATA as usual)."""
        n = len(data)
        if n < 2 or data[n - 1] != 0x0A or data[n - 2] != 0x0D:
            return None
        if self._buf or self._pending is not None or self._swallow or self.closed:
            return None
        key = plain_get_key(data, n - 2)
        if key is None or 0x0A in key:  # (a newline inside would make it two lines)
            return None
        return key  # exactly what feed() would parse: Get("get", [key], False)

    def single_set(self, data: bytes) -> bytes | None:
        """The key, when DATA is exactly one whole ``set <key> <flags> <exptime> <bytes>\r\n<data>\r\n``
        (plain digits, no ``noreply``) that fits, and nothing is held from earlier reads: what
        :meth:`feed` would parse as one Store, so the proxy may forward DATA itself. None otherwise."""
        if data[:4] != b"set " or self._buf or self._pending is not None or self._swallow or self.closed:
            return None
        nl = data.find(b"\n")
        if nl < 0 or data[nl - 1] != 0x0D:
            return None
        tokens = data[4:nl - 1].split(b" ")
        if len(tokens) != 4:
            return None
        key, flags, exptime, size = tokens
        if not (key and len(key) <= KEY_MAX_LENGTH) or 0x00 in key:
            return None
        for number in (flags, exptime, size):  # short plain digits: no C-style corner cases
            if not (len(number) < 10 and number.isdigit()):
                return None
        nbytes = int(size) + 2
        if len(data) != nl + 1 + nbytes or data[-2:] != b"\r\n":
            return None
        if not item_fits(len(key), int(flags), nbytes, self.max_item_size):
            return None
        return key

    @staticmethod
    def _multiget(buf: bytes, pos: int) -> bool:
        """memcached lets only a multiget line run past 2048 bytes (and so do we, to a bound)."""
        stripped = buf[pos:pos + 101].lstrip(b" ")
        lead = min(len(buf) - pos, 101) - len(stripped)
        return lead <= 100 and (stripped.startswith(b"get ") or stripped.startswith(b"gets "))

    # -- one command line ------------------------------------------------------------------

    def _command(self, line: bytes) -> Request | None:
        key = plain_get_key(line, len(line))
        if key is not None:
            return Get("get", [key], False)  # the most common request, parsed without tokenizing
        if 0x00 in line:  # memcached tokenizes up to strlen()
            line = line[: line.index(b"\0")]
        tokens = line.split(b" ")
        if b"" in tokens:  # runs of spaces (or leading/trailing ones) make empty tokens: drop them
            tokens = [t for t in tokens if t]
        if not tokens or len(tokens[0]) < 2:
            return Reply("error", ERROR)
        name = tokens[0]
        if name in _GETS:
            return self._get(name, tokens)
        if len(tokens) >= MAX_TOKENS:
            # the tokenizer stops at 23 tokens and keeps the rest as one unparsed tail
            tokens = tokens[: MAX_TOKENS - 1]
        ntokens = len(tokens) + 1
        if name in _META:
            return self._meta(name, tokens, ntokens, line)
        mode = _STORE_MODES.get(name)
        if mode is not None:
            if ntokens not in (6, 7):
                return Reply("error", ERROR)
            return self._store(name.decode(), mode, tokens, ntokens, False)
        handler = _SIMPLE.get(name)
        if handler is not None:
            return handler(self, tokens, ntokens, line)
        if tokens[-1].startswith(b"HTTP/"):
            return Close("http request")
        return Reply("error", ERROR)

    def _get(self, name: bytes, tokens: list[bytes]) -> Request:
        cas, touch = _GETS[name]
        command = name.decode() if name != b"bget" else "get"
        if len(tokens) < 2:
            return Reply(command, ERROR)
        keys = tokens[1:]
        exptime = None
        if touch:
            exptime = safe_strtol(keys[0])
            if exptime is None:
                return Reply(command, BAD_EXPTIME)
            keys = keys[1:]
        for key in keys:
            if len(key) > KEY_MAX_LENGTH:
                return Reply(command, BAD_FORMAT)
        return Get(command, keys, cas, exptime)

    def _store(self, command: str, mode: bytes, tokens: list[bytes], ntokens: int, with_cas: bool) -> Request | None:
        noreply = tokens[ntokens - 2] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return _reply(command, BAD_FORMAT, noreply)
        flags = safe_strtoul(tokens[2])
        exptime = safe_strtol(tokens[3])
        vlen = safe_strtol(tokens[4])
        if flags is None or exptime is None or vlen is None:
            return _reply(command, BAD_FORMAT, noreply)
        cas_unique = 0
        if with_cas:
            parsed = safe_strtoull(tokens[5])
            if parsed is None:
                return _reply(command, BAD_FORMAT, noreply)
            cas_unique = parsed
        if vlen < 0 or vlen > INT_MAX - 2:
            return _reply(command, BAD_FORMAT, noreply)
        nbytes = vlen + 2
        if not item_fits(len(key), flags, nbytes, self.max_item_size):
            self._swallow = nbytes
            return TooLarge(command, key, unlink=mode == SET, noreply=noreply)

        def make(block: bytes) -> Request | None:
            if block[-2:] != b"\r\n":
                return _reply(command, BAD_CHUNK, noreply)
            return Store(command, mode, key, flags, exptime, block[:-2], cas_unique, noreply)

        self._pending = _PendingData(nbytes, make)
        return None  # the request is complete once its data block is in

    def _meta(self, name: bytes, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        """Meta commands go to the backend as written; only ``ms`` framing is decided here."""
        command = name.decode()
        if name == b"mn":
            return Meta(command, b"", [], b"mn", None, False, False)
        if len(line) > LINE_LIMIT:  # never forwarded this long: see protocol/longline.py
            tokens = shorten_meta(tokens, name == b"ms")
            line = b" ".join(tokens)
        key = tokens[1] if len(tokens) > 1 else b""
        flags = tokens[2:]
        # A superset of memcached's quiet test is safe: a quiet command is followed by "mn".
        quiet = any(f[:1] == b"q" for f in flags)
        base64 = any(f[:1] == b"b" for f in flags)
        if name != b"ms" or ntokens < 4 or len(key) > KEY_MAX_LENGTH or ntokens > MFLAG_MAX_OPT_LENGTH:
            return Meta(command, key, flags, line, None, quiet, base64)
        vlen = safe_strtol(tokens[2])
        if vlen is None or vlen < 0 or vlen > INT_MAX - 2:
            return Meta(command, key, flags, line, None, quiet, base64)
        # From here memcached always consumes vlen+2 bytes: as the value, or swallowed after an error.
        nbytes = vlen + 2
        if nbytes > self.max_item_size:
            self._swallow = nbytes
            refused = refusal(key, flags[1:])
            if refused is not None:  # memcached checks the flags first, and keeps the old value
                return Reply(command, refused)
            return TooLarge(command, key, unlink=True, noreply=False, base64=base64)
        self._pending = _PendingData(
            nbytes, lambda block: Meta(command, key, flags[1:], line, block, quiet, base64))
        return None  # the request is complete once its data block is in

    # -- the rest of the text commands ------------------------------------------------------

    def _cas(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        if ntokens not in (7, 8):
            return Reply("cas", ERROR)
        return self._store("cas", CAS, tokens, ntokens, True)

    def _arith(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        incr = tokens[0] == b"incr"
        command = "incr" if incr else "decr"
        if ntokens not in (4, 5):
            return Reply(command, ERROR)
        noreply = tokens[ntokens - 2] == b"noreply"
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return _reply(command, BAD_FORMAT, noreply)
        delta = safe_strtoull(tokens[2])
        if delta is None:
            return _reply(command, BAD_DELTA, noreply)
        return Arith(tokens[1], delta, incr, noreply)

    def _delete(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        if ntokens < 3 or ntokens > 5:
            return Reply("delete", ERROR)
        noreply = False
        if ntokens > 3:
            hold_is_zero = tokens[2] == b"0"
            noreply = tokens[ntokens - 2] == b"noreply"
            valid = (ntokens == 4 and (hold_is_zero or noreply)) or (ntokens == 5 and hold_is_zero and noreply)
            if not valid:
                return _reply("delete", BAD_DELETE, noreply)
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return _reply("delete", BAD_FORMAT, noreply)
        return Delete(tokens[1], noreply)

    def _touch(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        if ntokens not in (4, 5):
            return Reply("touch", ERROR)
        noreply = tokens[ntokens - 2] == b"noreply"
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return _reply("touch", BAD_FORMAT, noreply)
        exptime = safe_strtol(tokens[2])
        if exptime is None:
            return _reply("touch", BAD_EXPTIME, noreply)
        return Touch(tokens[1], exptime, noreply)

    def _flush_all(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        if ntokens > 4:
            return Reply("flush_all", ERROR)
        noreply = tokens[ntokens - 2] == b"noreply"
        delay = b""
        if ntokens != (3 if noreply else 2):
            if safe_strtol(tokens[1]) is None:
                return _reply("flush_all", BAD_EXPTIME, noreply)
            delay = b" " + short_number(tokens[1])  # a number padded past the line limit is not forwarded so
        return Passthrough("flush_all", b"flush_all" + delay, noreply)

    def _verbosity(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        if ntokens not in (3, 4):
            return Reply("verbosity", ERROR)
        noreply = tokens[ntokens - 2] == b"noreply"
        if safe_strtoul(tokens[1]) is None:
            return _reply("verbosity", BAD_FORMAT, noreply)
        return Passthrough("verbosity", b"verbosity " + short_number(tokens[1]), noreply)

    def _version(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request:
        return Passthrough("version", b"version", False)

    def _stats(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request:
        if len(line) > LINE_LIMIT:  # no stats argument is long: a long one stays unknown when cut
            tokens = [token[:SHORT_TOKEN] for token in tokens]
        return Passthrough("stats", b" ".join(tokens), False)

    def _quit(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request:
        return Quit()

    def _memlimit(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        """``cache_memlimit <megabytes> [noreply]``: the pod's own memcached (L1) answers it, as it
        answers ``verbosity``. Only a number is sent, without ``noreply`` (memcached then always
        answers, and the answer is dropped here); anything else gets memcached's ``ERROR`` here."""
        words = len(tokens)
        if words not in (2, 3):
            return Reply("cache_memlimit", ERROR)
        noreply = tokens[-1] == b"noreply"
        if safe_strtoul(tokens[1]) is None:
            return _reply("cache_memlimit", ERROR, noreply)
        return Passthrough("cache_memlimit", b"cache_memlimit " + short_number(tokens[1]), noreply)

    def _admin(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request | None:
        """slabs, lru, extstore, watch: never forwarded (they would retune or stream from the
        backend the proxy itself relies on), answered ``ERROR``, except where memcached 1.6.18 is
        silent because the command ends in ``noreply`` (it parses ``noreply`` before deciding, for
        these forms only)."""
        name, words = tokens[0], len(tokens)
        noreply = tokens[-1] == b"noreply"
        if name == b"slabs":
            if words == 4 and tokens[1] == b"reassign" and noreply:
                return Reply("error", BAD_FORMAT)  # "noreply" read as the destination class
            silent = noreply and words >= 3 and tokens[1] == b"automove"
        else:  # lru, extstore, watch
            silent = noreply and words >= 2
        return None if silent else Reply("error", ERROR)

    def _shutdown(self, tokens: list[bytes], ntokens: int, line: bytes) -> Request:
        """Never forwarded: clients of a shared cache must not stop it (memcached without -A)."""
        return Reply("shutdown", b"ERROR: shutdown not enabled\r\n")


def _reply(command: str, data: bytes, noreply: bool) -> Request | None:
    """memcached's out_string(): with ``noreply`` even an error is not sent."""
    return None if noreply else Reply(command, data)


_SIMPLE = {
    b"cas": TextParser._cas,
    b"incr": TextParser._arith,
    b"decr": TextParser._arith,
    b"delete": TextParser._delete,
    b"touch": TextParser._touch,
    b"flush_all": TextParser._flush_all,
    b"verbosity": TextParser._verbosity,
    b"version": TextParser._version,
    b"stats": TextParser._stats,
    b"quit": TextParser._quit,
    b"shutdown": TextParser._shutdown,
    b"cache_memlimit": TextParser._memlimit,
    b"slabs": TextParser._admin,
    b"lru": TextParser._admin,
    b"extstore": TextParser._admin,
    b"watch": TextParser._admin,
}
