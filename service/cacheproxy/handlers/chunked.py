"""The chunked handler: values larger than one memcached item, spread over several items.

A value up to ``threshold`` bytes is stored exactly as :class:`PlainHandler` stores it (one
plain item, readable by anyone). A larger value becomes N *chunk* items plus one *metadata*
item under the client's key, in the format of :mod:`~cacheproxy.handlers.chunk_format`: every
write draws a random token, the chunk keys are derived from it, every chunk value starts with
it. See docs/chunking.md for the full design.

Why a torn or concurrent write can only ever read as a miss, never as mixed data:

* chunks are written first and the metadata last, so metadata only names chunks that were
  fully stored under *its* token;
* a writer never overwrites another write's chunks (fresh token, fresh keys), so the chunks a
  reader finds through one metadata item all belong to that one write;
* each chunk's token prefix and length are checked on read; a missing chunk or a mismatch
  makes the whole read a miss (counted in ``chunk_misses`` / ``chunk_token_mismatches``).

Per-client ordering: a chunked write or an append/prepend takes several round trips. While one
is in flight, this client's later requests wait in a queue, so a pipelined ``set k <big>``
then ``get k`` (or ``delete k``) is executed in the order the client sent them. Plain requests
are never delayed otherwise.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable

from ..backends.connection import BackendConnection, Callback
from ..backends.errors import BackendError
from ..backends.pool import Lane
from ..metrics.stats import STATS
from ..protocol.meta import META, MetaResponse, code_of
from ..protocol.requests import ADD, APPEND, CAS, PREPEND
from .chunk_format import (
    META_LEN,
    RESERVED_FLAGS_TOKEN,
    TOKEN_LEN,
    ChunkMeta,
    as_chunk_meta,
    exptime_from_ttl,
    meta_store_command,
    plan_chunks,
    synthesize_value,
)
from .plain import PlainHandler

DEFAULT_MAX_VALUE_SIZE = 64 << 20
HEADROOM = 1024  # item header + chunk key + token, with room to spare
APPEND_RETRIES = 5  # read-modify-write attempts before an append answers NOT_STORED


def _simple(code: bytes) -> MetaResponse:
    return MetaResponse(code, code, None, code + b"\r\n")


HD, EN, NS = _simple(b"HD"), _simple(b"EN"), _simple(b"NS")
TOO_LARGE = MetaResponse(b"SERVER_ERROR", b"SERVER_ERROR object too large for cache", None,
                         b"SERVER_ERROR object too large for cache\r\n")


def _ignore(resp: MetaResponse | BackendError) -> None:
    """Answers to best-effort clean-up commands are not interesting."""


# -- the handler ------------------------------------------------------------------------------


class ChunkedHandler:
    """Same callback interface as :class:`PlainHandler` / :class:`~cacheproxy.orcas.base.Orca`."""

    def __init__(self, conn: BackendConnection | Lane, *, threshold: int, chunk_size: int,
                 max_value_size: int = DEFAULT_MAX_VALUE_SIZE, owned: bool = False) -> None:
        if chunk_size <= 0 or threshold < 0 or max_value_size < threshold:
            raise ValueError("chunking needs chunk_size > 0 and 0 <= threshold <= max_value_size")
        self.conn = conn
        self.plain = PlainHandler(conn)
        self.send_read = conn.send_read
        self.threshold, self.chunk_size, self.max_value_size = threshold, chunk_size, max_value_size
        self.owned = owned
        self._busy = False
        self._queue: deque[tuple[Callable[[], None], Callback]] = deque()

    @classmethod
    def for_item_size(cls, conn: BackendConnection | Lane, max_item_size: int, *, threshold: int = 0,
                      chunk_size: int = 0, max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
                      owned: bool = False) -> ChunkedHandler:
        """Defaults derived from L1's ``-I``: 0 means "just under max_item_size"."""
        limit = max_item_size - HEADROOM
        return cls(conn, threshold=threshold or limit, chunk_size=chunk_size or limit,
                   max_value_size=max_value_size, owned=owned)

    def _sane(self, meta: ChunkMeta) -> bool:
        """Metadata this handler may act on: a crafted metadata item (a client can store any
        flags and bytes) must not make one read fan out into millions of chunk requests."""
        return meta.total <= self.max_value_size and meta.chunk_size >= min(self.chunk_size, 1024)

    # -- per-client ordering ------------------------------------------------------------------

    def _submit(self, op: Callable[[], None], cb: Callback) -> None:
        """Run OP now, or after the multi-step write in flight (CB answers it if we close first)."""
        if self._busy or self._queue:
            self._queue.append((op, cb))
        else:
            op()

    def _exclusive(self, run: Callable[[Callback], None], cb: Callback) -> None:
        """Run a multi-round-trip operation; later requests of this client wait until it answers."""
        self._busy = True

        def finish(resp: MetaResponse | BackendError) -> None:
            try:
                cb(resp)
            finally:
                self._busy = False
                queue = self._queue
                while queue and not self._busy:
                    queue.popleft()[0]()

        run(finish)

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        """Answers like ``mg key v f [c] [t] [T<exptime>]``, chunked or not."""
        extra = (b" c" if cas else b"") + (b" t" if ttl else b"")
        self._submit(lambda: self._read(key, extra, exptime, lambda resp, _meta: cb(resp)), cb)

    def _read(self, key: bytes, extra: bytes, exptime: int | None,
              done: Callable[[MetaResponse | BackendError, ChunkMeta | None], None]) -> None:
        cmd = b"mg " + key + b" v f" + extra
        send = self.send_read
        if exptime is not None:  # a touching read changes the item: never retried elsewhere
            cmd += b" T%d" % exptime
            send = self.conn.send

        def got_meta(resp: MetaResponse | BackendError) -> None:
            meta = as_chunk_meta(resp)
            if meta is None:
                done(resp, None)
            elif not self._sane(meta):
                done(EN, None)
            else:
                self._read_chunks(meta, resp, exptime, lambda answer: done(answer, meta))  # type: ignore[arg-type]

        send(cmd + b"\r\n", META, got_meta)

    def _read_chunks(self, meta: ChunkMeta, head: MetaResponse, exptime: int | None, done: Callback) -> None:
        """All chunks in one pipelined burst; the value, or EN if any chunk is missing or foreign."""
        parts: list = [None] * meta.count
        left = [meta.count]

        def finish() -> None:
            pieces, missing, foreign = [], False, False
            for index, resp in enumerate(parts):
                code = code_of(resp)
                if code == b"EN":
                    missing = True
                elif code != b"VA":
                    done(resp)  # a backend error: report it rather than guess
                    return
                elif (len(resp.value) != TOKEN_LEN + meta.chunk_length(index)
                      or not resp.value.startswith(meta.token)):
                    foreign = True
                else:
                    pieces.append(memoryview(resp.value)[TOKEN_LEN:])
            if missing:
                STATS.chunk_misses += 1
                done(EN)
            elif foreign:
                STATS.chunk_token_mismatches += 1
                done(EN)
            else:
                done(synthesize_value(head, meta, b"".join(pieces)))

        def collector(index: int) -> Callback:
            def got(resp: MetaResponse | BackendError) -> None:
                parts[index] = resp
                left[0] -= 1
                if left[0] == 0:
                    finish()

            return got

        if exptime is None:
            suffix, send = b" v\r\n", self.send_read
        else:
            suffix, send = b" v T%d\r\n" % exptime, self.conn.send
        for index in range(meta.count):
            send(b"mg " + meta.chunk_key(index) + suffix, META, collector(index))

    # -- writes -------------------------------------------------------------------------------

    def store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
              cb: Callback) -> None:
        self._submit(lambda: self._store(mode, key, flags, exptime, data, cas_unique, cb), cb)

    def _store(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
               cb: Callback) -> None:
        if mode in (APPEND, PREPEND):
            self._exclusive(lambda finish: self._append(mode, key, data, finish, APPEND_RETRIES), cb)
        elif len(data) <= self.threshold:
            self.plain.store(mode, key, flags, exptime, data, cas_unique, cb)
        elif len(data) > self.max_value_size:
            cb(TOO_LARGE)  # the client parser normally refuses these first
        else:
            self._exclusive(lambda finish: self._write_chunked(
                mode, key, flags, exptime, data, cas_unique, finish, read_old=True, old=None), cb)

    def _write_chunked(self, mode: bytes, key: bytes, flags: int, exptime: int, data: bytes, cas_unique: int,
                       cb: Callback, *, read_old: bool, old: ChunkMeta | None) -> None:
        """Chunks first, metadata last (with MODE's semantics). On success the value this write
        replaced (OLD, or read from the backend just before when READ_OLD) loses its chunks."""
        meta = plan_chunks(len(data), self.chunk_size, flags, os.urandom(TOKEN_LEN))
        send = self.conn.send
        replaced: list = []
        if read_old and mode != ADD:  # a successful add replaced nothing
            send(b"mg " + key + b" f v\r\n", META, replaced.append)
        failure: list = []
        left = [meta.count]

        def chunk_stored(resp: MetaResponse | BackendError) -> None:
            if code_of(resp) != b"HD" and not failure:
                failure.append(resp)
            left[0] -= 1
            if left[0] == 0:
                chunks_done()

        def chunks_done() -> None:
            if failure:
                self._delete_chunks(meta)
                cb(failure[0])
                return
            send(meta_store_command(mode, key, exptime, cas_unique) + meta.encode() + b"\r\n", META, meta_stored)

        def meta_stored(resp: MetaResponse | BackendError) -> None:
            if code_of(resp) == b"HD":
                prior = old if old is not None else (as_chunk_meta(replaced[0]) if replaced else None)
                if prior is not None and prior.token != meta.token and self._sane(prior):
                    self._delete_chunks(prior)
            else:
                self._delete_chunks(meta)
            cb(resp)

        view, size, token = memoryview(data), self.chunk_size, meta.token
        for index in range(meta.count):
            piece = view[index * size:(index + 1) * size]
            head = b"ms %s %d T%d\r\n" % (meta.chunk_key(index), TOKEN_LEN + len(piece), exptime)
            send(b"".join((head, token, piece, b"\r\n")), META, chunk_stored)

    def _delete_chunks(self, meta: ChunkMeta) -> None:
        """Best effort: orphaned chunks would otherwise sit in memory until evicted or expired."""
        for index in range(meta.count):
            self.conn.send(b"md " + meta.chunk_key(index) + b"\r\n", META, _ignore)

    # -- append / prepend ---------------------------------------------------------------------

    def _append(self, mode: bytes, key: bytes, data: bytes, finish: Callback, tries: int) -> None:
        """A plain append when the result stays plain, else read-modify-write; both guarded by
        the CAS seen first, so a value that changes (or becomes chunked) meanwhile is retried."""

        def retry_or(resp: MetaResponse | BackendError) -> None:
            code = code_of(resp)
            if code == b"EX" and tries > 1:
                self._append(mode, key, data, finish, tries - 1)
            elif code in (b"EX", b"NF", b"NS"):
                finish(NS)  # key vanished, or kept changing under us: as a failed append
            else:
                finish(resp)

        def probed(resp: MetaResponse | BackendError) -> None:
            code = code_of(resp)
            if code == b"EN":
                finish(NS)
                return
            if code != b"HD":
                finish(resp)
                return
            size, cas = int(resp.flag(b"s") or 0), resp.flag(b"c") or b"0"  # type: ignore[union-attr]
            looks_chunked = resp.flag(b"f") == RESERVED_FLAGS_TOKEN and size == META_LEN  # type: ignore[union-attr]
            if not looks_chunked and size + len(data) <= self.threshold:
                head = b"ms %s %d M%s C%s\r\n" % (key, len(data), mode, cas)
                self.conn.send(head + data + b"\r\n", META, retry_or)
            else:
                self._read(key, b" c t", None, read_back)

        def read_back(resp: MetaResponse | BackendError, old: ChunkMeta | None) -> None:
            code = code_of(resp)
            if code == b"EN" and old is not None and tries > 1:
                self._append(mode, key, data, finish, tries - 1)  # chunks replaced under us
                return
            if code == b"EN":
                finish(NS)
                return
            if code != b"VA":
                finish(resp)
                return
            value = resp.value + data if mode == APPEND else data + resp.value  # type: ignore[union-attr,operator]
            if len(value) > self.max_value_size:
                finish(NS)  # memcached answers NOT_STORED when an append no longer fits
                return
            flags = old.flags if old is not None else int(resp.flag(b"f") or 0)  # type: ignore[union-attr]
            cas = int(resp.flag(b"c") or 0)  # type: ignore[union-attr]
            exptime = exptime_from_ttl(resp.flag(b"t"), time.time())  # type: ignore[union-attr]
            if len(value) > self.threshold:
                self._write_chunked(CAS, key, flags, exptime, value, cas, retry_or, read_old=False, old=old)
                return

            def stored_plain(answer: MetaResponse | BackendError) -> None:
                if code_of(answer) == b"HD" and old is not None:
                    self._delete_chunks(old)
                retry_or(answer)

            self.plain.store(CAS, key, flags, exptime, value, cas, stored_plain)

        self.conn.send(b"mg " + key + b" s f c\r\n", META, probed)

    # -- the rest -----------------------------------------------------------------------------

    def delete(self, key: bytes, cb: Callback, *, base64: bool = False) -> None:
        self._submit(lambda: self._delete(key, cb, base64), cb)

    def _delete(self, key: bytes, cb: Callback, base64: bool) -> None:
        """Read what is there and delete it in one burst; then drop its chunks (best effort)."""
        b64 = b" b" if base64 else b""
        seen: list = []
        self.conn.send(b"mg " + key + b64 + b" f v\r\n", META, seen.append)

        def deleted(resp: MetaResponse | BackendError) -> None:
            cb(resp)
            meta = as_chunk_meta(seen[0]) if seen else None
            if meta is not None and code_of(resp) == b"HD" and self._sane(meta):
                self._delete_chunks(meta)

        self.conn.send(b"md " + key + b64 + b"\r\n", META, deleted)

    def touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        self._submit(lambda: self._touch(key, exptime, cb), cb)

    def _touch(self, key: bytes, exptime: int, cb: Callback) -> None:
        """Touch the metadata (reading it, to learn the token), then every chunk: HD or EN."""

        def touched(resp: MetaResponse | BackendError) -> None:
            code = code_of(resp)
            meta = as_chunk_meta(resp)
            if code != b"VA":
                cb(resp)
            elif meta is None or not self._sane(meta):
                cb(HD)
            else:
                self._touch_chunks(meta, exptime, cb)

        self.conn.send(b"mg %s T%d f v\r\n" % (key, exptime), META, touched)

    def _touch_chunks(self, meta: ChunkMeta, exptime: int, cb: Callback) -> None:
        answers: list = []

        def got(resp: MetaResponse | BackendError) -> None:
            answers.append(resp)
            if len(answers) < meta.count:
                return
            errors = [a for a in answers if code_of(a) not in (b"HD", b"EN")]
            if errors:
                cb(errors[0])
            elif any(code_of(a) == b"EN" for a in answers):
                STATS.chunk_misses += 1
                cb(EN)
            else:
                cb(HD)

        for index in range(meta.count):
            self.conn.send(b"mg %s T%d\r\n" % (meta.chunk_key(index), exptime), META, got)

    def arith(self, key: bytes, delta: int, incr: bool, cb: Callback) -> None:
        """Plain ``ma``: on a metadata item memcached itself answers "non-numeric value"."""
        self._submit(lambda: self.plain.arith(key, delta, incr, cb), cb)

    def meta(self, line: bytes, data: bytes | None, quiet: bool, cb: Callback) -> None:
        """Meta commands pass through unchanged (a chunked key shows its metadata item)."""
        self._submit(lambda: self.plain.meta(line, data, quiet, cb), cb)

    def text(self, line: bytes, multiline: bool, cb: Callback) -> None:
        self._submit(lambda: self.plain.text(line, multiline, cb), cb)

    def close(self) -> None:
        """The client went away: requests still queued behind a multi-step write are answered
        SERVER_ERROR without being sent (every callback runs exactly once)."""
        queue, self._queue = self._queue, deque()
        error = BackendError("client connection closed")
        for _, cb in queue:
            cb(error)
        if self.owned:
            self.conn.close()
