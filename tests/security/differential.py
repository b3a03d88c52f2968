"""Differential runs for authentication: the same bytes to memcached (-Y or -S) and to the proxy
(--auth-file), each case on a fresh connection of each, the answers compared byte for byte.

Before authentication memcached answers per read, not per command (see
:mod:`cacheproxy.protocol.asciiauth`), so each case is sent in one write and read back until the
server closes the connection or has been quiet for ``QUIET`` seconds; both targets are read
concurrently and the same way."""

from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

from tests.security.support import host_port

QUIET = 0.3
CLOSED = b"<CLOSED>"


def exchange(addr: str, blob: bytes, quiet: float = QUIET) -> bytes:
    with socket.create_connection(host_port(addr), timeout=10) as s:
        s.sendall(blob)
        s.settimeout(quiet)
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except TimeoutError:
                return out
            except ConnectionResetError:
                return out + CLOSED
            if not chunk:
                return out + CLOSED
            out += chunk
        return out


def compare(memcached: str, proxy: str, cases: dict[str, bytes]) -> list[str]:
    """The cases whose answers differ, with both answers."""
    diffs = []
    with ThreadPoolExecutor(2) as pool:
        for name, blob in cases.items():
            a, b = pool.map(lambda addr, blob=blob: exchange(addr, blob), (memcached, proxy))
            if a != b:
                diffs.append(f"{name}: memcached {a[:300]!r} proxy {b[:300]!r}")
    return diffs


# -- binary frames -------------------------------------------------------------------------------

HEADER = struct.Struct(">BBHBBHIIQ")


def frame(opcode: int, key: bytes = b"", value: bytes = b"", extras: bytes = b"", opaque: int = 0,
          bodylen: int | None = None) -> bytes:
    body = len(key) + len(value) + len(extras) if bodylen is None else bodylen
    return HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0, body, opaque, 0) + extras + key + value


def sasl_auth(data: bytes, opaque: int = 1, mech: bytes = b"PLAIN") -> bytes:
    return frame(0x21, mech, data, opaque=opaque)


def sasl_step(data: bytes, opaque: int = 2, mech: bytes = b"PLAIN") -> bytes:
    return frame(0x22, mech, data, opaque=opaque)


LIST_MECHS = frame(0x20, opaque=7)
NOOP = frame(0x0A, opaque=99)
VERSION = frame(0x0B, opaque=3)


def get(key: bytes, opaque: int = 5) -> bytes:
    return frame(0x00, key, opaque=opaque)


def set_(key: bytes, value: bytes, opaque: int = 6) -> bytes:
    return frame(0x01, key, value, extras=b"\0" * 8, opaque=opaque)
