"""The chunk format: how one large value is laid out as a metadata item plus chunk items.

Pure functions and constants, no I/O: the metadata item's layout and its three marks (reserved
flags, magic, exact length), chunk keys derived from a write's token, and the meta commands and
answers that carry them. :mod:`~cacheproxy.handlers.chunked` is the handler that reads and
writes values in this format; docs/chunking.md describes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..protocol.meta import MetaResponse
from ..protocol.requests import CAS, SET

#: memcached flags value marking a metadata item (client flags are kept inside the item).
RESERVED_FLAGS = 0xC4C7_D17A
MAGIC = b"\x89CPXCHK"  # starts with a non-digit: incr/decr on it fails as "non-numeric"
VERSION = 1
TOKEN_LEN = 8
_LAYOUT = struct.Struct(">7sBQIII8s")  # magic, version, total, chunk size, count, flags, token
META_LEN = _LAYOUT.size
RESERVED_FLAGS_TOKEN = b"%d" % RESERVED_FLAGS

RELATIVE_EXPTIME_MAX = 60 * 60 * 24 * 30  # memcached reads larger exptimes as unix times


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """What the metadata item says about one chunked value."""

    total: int
    chunk_size: int
    count: int
    flags: int
    token: bytes

    def encode(self) -> bytes:
        return _LAYOUT.pack(MAGIC, VERSION, self.total, self.chunk_size, self.count, self.flags, self.token)

    def chunk_key(self, index: int) -> bytes:
        return b"_c:%s:%d" % (self.token.hex().encode(), index)

    def chunk_length(self, index: int) -> int:
        """Length of chunk INDEX's data (without the token prefix)."""
        if index < self.count - 1:
            return self.chunk_size
        return self.total - self.chunk_size * (self.count - 1)


def decode_meta(blob: bytes) -> ChunkMeta | None:
    """The metadata in BLOB, or None unless every field is consistent."""
    if len(blob) != META_LEN or not blob.startswith(MAGIC):
        return None
    _, version, total, chunk_size, count, flags, token = _LAYOUT.unpack(blob)
    if version != VERSION or chunk_size == 0 or total == 0 or count != -(-total // chunk_size):
        return None
    return ChunkMeta(total, chunk_size, count, flags, token)


def as_chunk_meta(resp: object) -> ChunkMeta | None:
    """The ChunkMeta of a ``VA ... f<flags>`` answer that holds a metadata item, else None."""
    if not isinstance(resp, MetaResponse) or resp.code != b"VA" or resp.value is None:
        return None
    if len(resp.value) != META_LEN or resp.flag(b"f") != RESERVED_FLAGS_TOKEN:
        return None
    return decode_meta(resp.value)


def plan_chunks(total: int, chunk_size: int, flags: int, token: bytes) -> ChunkMeta:
    return ChunkMeta(total, chunk_size, -(-total // chunk_size), flags, token)


def exptime_from_ttl(ttl: bytes | None, now: float) -> int:
    """The exptime that keeps an item's remaining TTL (the ``t`` flag: -1 = never expires)."""
    remaining = int(ttl) if ttl is not None else -1
    if remaining < 0:
        return 0
    remaining = max(remaining, 1)
    return remaining if remaining <= RELATIVE_EXPTIME_MAX else int(now) + remaining



def meta_store_command(mode: bytes, key: bytes, exptime: int, cas_unique: int) -> bytes:
    """The ``ms`` line for a metadata item, with the client's set/add/replace/cas semantics."""
    head = b"ms %s %d F%d T%d" % (key, META_LEN, RESERVED_FLAGS, exptime)
    if mode == CAS:
        return head + b" C%d\r\n" % cas_unique
    if mode == SET:
        return head + b"\r\n"
    return head + b" M" + mode + b"\r\n"


def synthesize_value(head: MetaResponse, meta: ChunkMeta, value: bytes) -> MetaResponse:
    """The metadata's ``VA`` answer rewritten to describe the whole value: size and client flags
    replaced, every other returned flag (``c``, ``t`` ...) kept as memcached sent it."""
    tokens = head.line.split(b" ")
    tokens[1] = b"%d" % meta.total
    for i in range(2, len(tokens)):
        if tokens[i][:1] == b"f":
            tokens[i] = b"f%d" % meta.flags
            break
    line = b" ".join(tokens)
    return MetaResponse(b"VA", line, value, b"".join((line, b"\r\n", value, b"\r\n")))
