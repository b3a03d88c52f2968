"""Test-side binary protocol helpers: encode request packets, split response bytes into frames.
The proxy itself never encodes requests nor parses responses, so these live with the tests."""

from __future__ import annotations

from cacheproxy.protocol.binary import HEADER, HEADER_SIZE, REQUEST_MAGIC


def parse_frames(data: bytes) -> tuple[list[tuple[int, int, int, int, bytes, bytes, bytes]], bytes]:
    """Split response bytes into ``(opcode, status, opaque, cas, extras, key, value)`` tuples.

    For tests and diagnostics (the proxy never parses responses); returns leftover bytes.
    """
    out = []
    view = memoryview(data)
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        _m, op, keylen, extlen, _dt, status, bodylen, opaque, cas = HEADER.unpack_from(view, pos)
        end = pos + HEADER_SIZE + bodylen
        if end > len(data):
            break
        body = bytes(view[pos + HEADER_SIZE : end])
        out.append(
            (op, status, opaque, cas, body[:extlen], body[extlen : extlen + keylen], body[extlen + keylen :])
        )
        pos = end
    return out, bytes(view[pos:])


def encode_request(
    opcode: int,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    *,
    opaque: int = 0,
    cas: int = 0,
    bodylen: int | None = None,
) -> bytes:
    """A request packet (for tests and clients); BODYLEN overrides the computed body length."""
    if bodylen is None:
        bodylen = len(extras) + len(key) + len(value)
    return (
        HEADER.pack(REQUEST_MAGIC, opcode, len(key), len(extras), 0, 0, bodylen, opaque, cas)
        + extras
        + key
        + value
    )
