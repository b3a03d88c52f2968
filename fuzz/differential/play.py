"""One sequence against one server: send it (whole, split at random, or byte by byte, from a
thread, so a server that stops reading cannot block the sender), read until a sentinel's answer
comes back, and return the normalised transcript.

A text step ends with ``md <sentinel> O<n> k`` (a miss that echoes its opaque), a binary step with
a NOOP whose opaque is the step's: its answer proves every answer before it has arrived. A step
whose sentinel does not come back within ``IDLE`` seconds of the last byte (the server is waiting
for the rest of a command) ends with ``<timeout>``; a closed connection with ``<closed>``.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from cacheproxy.protocol.binary import HEADER

from tests.differential.harness import CasNames, data_size, normalise_line
from tests.support.binary_frames import encode_request
from tests.support.procs import connect

from .binary_gen import frame
from .vocabulary import Command

IDLE = 0.6  # seconds without a byte, the sender done: the server waits for more
LONGEST = 20.0  # seconds for one step, whatever happens
NOOP = 0x0A
SENTINEL_OPAQUE = 0x5E5E0000
SPLITS = ("all", "all", "all", "bytes", "chunks")
NOT_SENT = b"<not sent: closed>"  # a step after the connection closed
SHOWN = 400  # longer answers are compared by length and hash
Transcript = list[list[bytes]]  # per step: its normalised answers, then <ok>, <timeout> or <closed>


@dataclass(frozen=True)
class Case:
    """One sequence and how it is delivered: PROTOCOL ``text`` (text and meta) or ``binary``;
    STEPWISE: one command per step (so CAS values seen can be used), else all in one; SPLIT:
    ``all`` (one send), ``bytes`` (one byte per send) or ``chunks`` (random sizes, from SEED)."""

    commands: tuple[Command, ...]
    protocol: str
    stepwise: bool
    split: str
    seed: int


class Connection:
    def __init__(self, addr: str) -> None:
        self.sock = connect(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(0.1)
        self.closed = False
        self.buf = bytearray()

    def send(self, payload: bytes, split: str, rng: random.Random) -> threading.Thread:
        if split == "all" or (split == "bytes" and len(payload) > 4000):
            pieces = [payload]
        elif split == "bytes":
            pieces = [payload[i:i + 1] for i in range(len(payload))]
        else:
            pieces, pos = [], 0
            while pos < len(payload):
                n = rng.choice([1, 2, 3, 7, 24, 100, 1000, 5000, 70000])
                pieces.append(payload[pos:pos + n])
                pos += n

        def run() -> None:
            try:
                for piece in pieces:
                    self.sock.sendall(piece)
            except OSError:
                pass  # the server closed: the reader sees it

        sender = threading.Thread(target=run, daemon=True)
        sender.start()
        return sender

    def read_until(self, done: Callable[[bytes], bool], sender: threading.Thread) -> str:
        start = last = time.monotonic()
        while not done(bytes(self.buf)):
            now = time.monotonic()
            if (now - last > IDLE and not sender.is_alive()) or now - start > LONGEST:
                return "timeout"
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return "closed"
            self.buf += chunk
            last = time.monotonic()
        return "ok"


def frames(data: bytes) -> tuple[list[tuple], bytes]:
    """Complete binary frames in DATA as (magic, op, status, opaque, cas, datatype, extras, key,
    value), and what is left after them."""
    out, pos = [], 0
    while len(data) - pos >= HEADER.size:
        magic, op, keylen, extlen, datatype, status, bodylen, opaque, cas = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + bodylen
        if end > len(data):
            break
        b = data[pos + HEADER.size:end]
        out.append((magic, op, status, opaque, cas, datatype, b[:extlen], b[extlen:extlen + keylen],
                    b[extlen + keylen:]))
        pos = end
    return out, data[pos:]


def text_units(raw: bytes) -> list[tuple[bytes, bytes | None]]:
    """Answer lines, each with the data block it announces (VALUE, VA) when that arrived whole."""
    units: list[tuple[bytes, bytes | None]] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        if end < 0:
            units.append((raw[pos:], None))
            break
        line, pos = raw[pos:end + 1], end + 1
        size = data_size(line)
        if size is not None and size >= 0 and pos + size + 2 <= len(raw):
            units.append((line, raw[pos:pos + size + 2]))
            pos += size + 2
        else:
            units.append((line, None))
    return units


def short(data: bytes, what: str) -> bytes:
    return data if len(data) <= SHOWN else b"<%s %d bytes hash %x>" % (what.encode(), len(data),
                                                                      hash(data) & 0xFFFFFFFF)


ME_LINE = re.compile(rb"^ME (\S+) exp=(-?\d+) la=(\d+) cas=(\d+) (.*)$", re.S)
H_FLAG, L_FLAG = re.compile(rb" h[01](?= |\r?\n)"), re.compile(rb" l~\d+(?= |\r?\n)")


def normalise_text(raw: bytes, cas: CasNames, two_levels: bool) -> list[bytes]:
    """The harness's normalisation, plus ``me`` lines' times bucketed; TWO_LEVELS (L1L2): the
    h and l flags hidden (which level served a read decides them)."""
    out = []
    for line, data in text_units(raw):
        me = ME_LINE.match(line)
        if me:
            exp = int(me.group(2))
            line = b"ME %s exp=~%d la=~%d cas=%s %s" % (me.group(1), exp // 10 * 10 if exp < 0 else exp,
                                                          int(me.group(3)) // 10 * 10, cas.name(me.group(4)),
                                                          me.group(5))
        else:
            line = normalise_line(line, cas)
            if two_levels and line[:2] in (b"HD", b"VA", b"EN"):
                line = L_FLAG.sub(b" l?", H_FLAG.sub(b" h?", line))
        out.append(short(line, "line") + (short(data, "data") if data is not None else b""))
    return out


def normalise_binary(raw: bytes, cas: CasNames) -> list[bytes]:
    found, rest = frames(raw)
    out = [repr((hex(magic), hex(op), hex(status), hex(opaque), cas.name(b"%d" % c) if c else b"0", datatype,
                 extras, k, short(v, "value"))).encode()
           for magic, op, status, opaque, c, datatype, extras, k, v in found]
    return out + ([b"leftover:" + rest[:200]] if rest else [])


def text_sentinel(step: int) -> tuple[bytes, bytes]:
    return b"md __s__ O%d k\r\n" % (9000 + step), b"NF O%d k__s__\r\n" % (9000 + step)


def ends_with(answer: bytes, data: bytes) -> bool:
    return data.endswith(answer)


def binary_done(step: int) -> Callable[[bytes], bool]:
    def done(data: bytes) -> bool:
        found, rest = frames(data)
        return bool(found) and not rest and found[-1][1] == NOOP and found[-1][3] == SENTINEL_OPAQUE + step
    return done


def render(commands: Sequence[Command], text_cas: Sequence[bytes], binary_cas: Sequence[int]) -> bytes:
    return b"".join(frame(c.binary, binary_cas) if c.binary else c.render_text(text_cas) for c in commands)


def play(addr: str, case: Case, two_levels: bool = False) -> Transcript:
    """CASE against the server at ADDR on a fresh connection; its transcript, step by step."""
    rng = random.Random(case.seed)
    conn = Connection(addr)
    cas = CasNames()
    binary_cas: list[int] = []
    transcript: Transcript = []
    steps = [[c] for c in case.commands] if case.stepwise else [list(case.commands)]
    try:
        for i, step in enumerate(steps):
            if conn.closed:
                transcript.append([NOT_SENT])
                continue
            payload = render(step, cas.values, binary_cas)
            done: Callable[[bytes], bool]
            if case.protocol == "text":
                sentinel, answer = text_sentinel(i)
                payload += sentinel
                done = partial(ends_with, answer)
            else:
                payload += encode_request(NOOP, opaque=SENTINEL_OPAQUE + i)
                done = binary_done(i)
            conn.buf.clear()
            sender = conn.send(payload, case.split, rng)
            status = conn.read_until(done, sender)
            sender.join(5)
            raw = bytes(conn.buf)
            if case.protocol == "text":
                units = normalise_text(raw, cas, two_levels)
            else:
                units = normalise_binary(raw, cas)
                binary_cas += [f[4] for f in frames(raw)[0] if f[4] and f[4] not in binary_cas]
            transcript.append([*units, b"<%s>" % status.encode()])
            if status == "timeout":
                break
    finally:
        conn.sock.close()
    return transcript
