"""Differential harness: the same binary byte stream, answered two ways, compared.

``Direct`` writes the bytes to memcached A over a raw socket (memcached's own binary code).
``Mapped`` parses them with :class:`BinaryParser`, sends ``to_meta(request)`` to memcached B
and converts each reply with ``from_meta`` -- exactly what the proxy will do. Both sides are
fresh memcacheds; their answers must agree byte for byte once CAS values are normalised.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable

from cacheproxy.protocol.binary import BinaryParser, Op
from cacheproxy.protocol.binary_meta import from_meta, to_meta
from cacheproxy.protocol.meta import READERS, MetaResponse

from tests.support.binary_frames import encode_request, parse_frames
from tests.support.procs import connect

SENTINEL_OPAQUE = 0x5E5E0000
Step = bytes | Callable[[int], bytes]  # a callable gets the side's most recent non-zero CAS


class SideClosed(Exception):
    pass


def recv_some(sock: socket.socket) -> bytes:
    """One recv; b'' on EOF or reset (memcached closing with unread input resets)."""
    try:
        return sock.recv(1 << 20)
    except ConnectionResetError:
        return b""


class Direct:
    """Binary bytes straight to memcached."""

    def __init__(self, addr: str) -> None:
        self.sock = connect(addr)
        self.closed = False

    def run(self, blob: bytes, sentinel: int | None) -> bytes:
        """Send BLOB; read until the sentinel Noop's answer, or EOF when memcached closes."""
        self.sock.sendall(blob)
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sentinel is not None and _ends_with_noop(out, sentinel):
                return out
            chunk = recv_some(self.sock)
            if not chunk:
                self.closed = True
                return out
            out += chunk
        raise AssertionError(f"memcached answer incomplete: {out[-200:]!r}")

    def close(self) -> None:
        self.sock.close()


class Mapped:
    """Binary bytes → BinaryParser → meta commands to memcached → from_meta frames."""

    def __init__(self, addr: str, seed: int = 0, max_item_size: int = 1048576) -> None:
        self.sock = connect(addr)
        self.parser = BinaryParser(max_item_size)
        self.rng = random.Random(seed)
        self.pending = b""
        self.closed = False
        self.sent_commands: list[bytes] = []

    def run(self, blob: bytes, sentinel: int | None) -> bytes:
        out = []
        pos = 0
        while pos < len(blob) and not self.closed:  # random chunking exercises partial frames
            size = self.rng.choice((1, 3, 24, 100, 4096, 1 << 20))
            for request in self.parser.feed(blob[pos : pos + size]):
                out.append(self.answer(request))
                if request.close:
                    self.closed = True
            pos += size
            if self.parser.closed:
                self.closed = True
        return b"".join(out)

    def answer(self, request) -> bytes:
        call = to_meta(request)
        reply = None
        if call.command is not None:
            self.sent_commands.append(call.command)
            self.sock.sendall(call.command)
            reply = self.read_reply(call.shape)
        return from_meta(request, reply)

    def read_reply(self, shape: int) -> MetaResponse:
        """The backend's answer, cut by the proxy's own readers (protocol/meta.py)."""
        while True:
            read = READERS[shape](self.pending, 0)
            if read is not None:
                reply, end = read
                self.pending = self.pending[end:]
                return reply
            chunk = recv_some(self.sock)
            if not chunk:
                raise SideClosed("backend closed")
            self.pending += chunk

    def close(self) -> None:
        self.sock.close()


def _ends_with_noop(data: bytes, opaque: int) -> bool:
    frames, rest = parse_frames(data)
    return not rest and bool(frames) and frames[-1][0] == Op.NOOP and frames[-1][2] == opaque


def normalise(data: bytes, *, stat_values: bool = True) -> list:
    """Frames with CAS reduced to zero/non-zero and (optionally) stat values dropped."""
    frames, rest = parse_frames(data)
    out = []
    for op, status, opaque, cas, extras, key, value in frames:
        if stat_values and op == Op.STAT and key:
            value = b"<value>"
        out.append((hex(op), status, hex(opaque), bool(cas), extras, key, value))
    if rest:
        out.append(("leftover", rest))
    return out


def last_cas(data: bytes, previous: int) -> int:
    frames, _ = parse_frames(data)
    for frame in frames:
        if frame[3]:
            previous = frame[3]
    return previous


def run_script(addr_a: str, addr_b: str, steps: list[Step], seed: int = 0, *, b_direct: bool = False) -> list[tuple]:
    """Run STEPS on both sides; returns per-step (direct, mapped) raw answers and close flags.
    With B_DIRECT, side B also gets the raw bytes (it is the proxy, mapping for itself)."""
    direct, mapped = Direct(addr_a), (Direct(addr_b) if b_direct else Mapped(addr_b, seed))
    results = []
    cas_a = cas_b = 0
    try:
        for index, step in enumerate(steps):
            if direct.closed or mapped.closed:
                break
            blob_a = step(cas_a) if callable(step) else step
            blob_b = step(cas_b) if callable(step) else step
            sentinel = SENTINEL_OPAQUE + index
            noop = encode_request(Op.NOOP, opaque=sentinel)
            got_b = mapped.run(blob_b + noop, sentinel)
            got_a = direct.run(blob_a + noop, None if mapped.closed else sentinel)
            results.append((blob_a, got_a, got_b, direct.closed, mapped.closed))
            cas_a, cas_b = last_cas(got_a, cas_a), last_cas(got_b, cas_b)
    finally:
        direct.close()
        mapped.close()
    return results
