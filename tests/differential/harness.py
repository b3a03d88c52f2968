"""Differential harness: send the same byte script to two targets and compare their replies.

A *script* is a list of steps. A step is some bytes to send and the shape of the reply to read
("one reply line", "until END", "until MN", "until the connection closes", ...). Knowing the shape
lets us read deterministically: no sleeping, no guessing when a reply is complete. Each target gets
its own fresh connection(s); its transcript is the list of replies, one list of *units* per step,
where a unit is a reply line plus the data block that follows a ``VALUE``/``VA`` line.

CAS values differ between servers, so before comparing, each distinct CAS value a target emits is
renamed by order of first appearance (``<cas1>``, ``<cas2>``, ...). That keeps the *equality
structure* (a gets after a cas must show a new CAS; two gets of an unchanged item must show the same
one) while hiding the numbers. Steps can send a CAS value back with the placeholder ``<C1>`` (the
first CAS this target emitted), ``<C2>``, ....

Only these are normalised: the 5th token of ``VALUE`` lines, ``c<N>`` tokens of meta reply lines,
and the time-derived meta tokens ``t<N>`` (remaining TTL, bucketed to a ceiling of 10 s so that
1000 and 999 compare equal) and ``l<N>`` (seconds since last access, floored to 10 s).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.support.procs import connect

#: Reply lines that end a multi-unit read early (a get that failed has no END).
ERROR_HEADS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
META_CODES = frozenset({b"HD", b"VA", b"EN", b"NF", b"NS", b"EX", b"MN", b"ME"})
CLOSED = b"<CLOSED>"
UNKNOWN_CAS = 10**15  # what ``<Cn>`` sends when this target has emitted fewer than n CAS values
TIMEOUT = b"<TIMEOUT>"

#: Reply shapes. A step's ``expect`` is a space-separated list of these, read in order.
#:   L  one unit (a line, plus its data block if it is a VALUE/VA line)
#:   E  units until END (or an error line: a failed get has no END)
#:   M  units until MN
#:   C  units until the connection is closed by the server
#:   Ln several single units, e.g. L3
#: An empty ``expect`` reads nothing (the bytes sent are only part of a request).
SHAPES = ("L", "E", "M", "C")


@dataclass(frozen=True)
class Step:
    """Bytes to send on connection ``conn`` and the reply shape(s) to read afterwards."""

    send: bytes
    expect: str = "L"
    compare: bool = True  # False: only check the reply against ``shape`` (stats, version)
    shape: str | None = None  # regex (bytes, fullmatch over the whole reply) when compare is False
    conn: int = 0


@dataclass(frozen=True)
class Script:
    name: str
    steps: tuple[Step, ...]
    doc: str = ""
    #: Most scripts end with a ``mn`` sentinel proving the connection is still in command state
    #: and carries no stray bytes. Scripts that end with a closed connection turn it off.
    sentinel: bool = True


@dataclass
class Unit:
    line: bytes  # including \r\n (or whatever ended it)
    data: bytes | None = None  # data block including its \r\n

    def raw(self) -> bytes:
        return self.line + (self.data or b"")


@dataclass
class Transcript:
    """What one target answered: per step, the normalised reply bytes."""

    replies: list[bytes] = field(default_factory=list)
    shape_errors: list[str] = field(default_factory=list)


class Reader:
    """Buffered, deadline-bound reads of reply units from one socket."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.timeout = timeout
        self.closed = False

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise EOFError
        self.buf += chunk

    def _take_line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            self._fill(deadline)

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def unit(self) -> Unit:
        deadline = time.monotonic() + self.timeout
        line = self._take_line(deadline)
        size = data_size(line)
        if size is None:
            return Unit(line)
        return Unit(line, self._take(size + 2, deadline))

def data_size(line: bytes) -> int | None:
    """Length of the data block announced by a ``VALUE`` or ``VA`` reply line, else None."""
    toks = line.split()
    try:
        if toks[:1] == [b"VALUE"] and len(toks) >= 4:
            return int(toks[3])
        if toks[:1] == [b"VA"] and len(toks) >= 2:
            return int(toks[1])
    except ValueError:
        return None
    return None


def is_head(line: bytes, heads: Sequence[bytes]) -> bool:
    tok = line.split(b" ", 1)[0].rstrip(b"\r\n")
    return tok in heads


def read_shape(reader: Reader, shape: str) -> list[Unit]:
    """Read the units one shape token asks for. EOF/timeout propagate to the caller."""
    if shape == "C":
        units = []
        while True:
            try:
                units.append(reader.unit())
            except EOFError:
                if reader.buf:  # a partial reply before the close
                    units.append(Unit(bytes(reader.buf)))
                    reader.buf.clear()
                return units
    if shape[0] == "L":
        return [reader.unit() for _ in range(int(shape[1:] or 1))]
    heads = {"E": (b"END", *ERROR_HEADS), "M": (b"MN",)}[shape]
    units = []
    while True:
        u = reader.unit()
        units.append(u)
        if is_head(u.line, heads):
            return units


class CasNames:
    """Renames CAS values by order of first appearance, per target."""

    def __init__(self) -> None:
        self.by_value: dict[bytes, int] = {}
        self.values: list[bytes] = []

    def name(self, value: bytes) -> bytes:
        if value not in self.by_value:
            self.values.append(value)
            self.by_value[value] = len(self.values)
        return b"<cas%d>" % self.by_value[value]

    def substitute(self, send: bytes) -> bytes:
        """Replace ``<C1>``... in outgoing bytes with this target's real CAS values."""

        def real(m: re.Match[bytes]) -> bytes:
            i = int(m.group(1))
            # A CAS no server has handed out (a script that reads a miss still sends a valid number)
            return self.values[i - 1] if i <= len(self.values) else b"%d" % (UNKNOWN_CAS + i)

        return re.sub(rb"<C(\d+)>", real, send)


_DIGITS = re.compile(rb"-?\d+")


def normalise_line(line: bytes, cas: CasNames) -> bytes:
    """Hide CAS numbers (and bucket TTL/last-access times) in one reply line; keep everything else."""
    body = line.rstrip(b"\r\n")
    ending = line[len(body):]
    toks = body.split(b" ")
    if toks[0] == b"VALUE" and len(toks) == 5 and toks[4].isdigit():
        toks[4] = cas.name(toks[4])
    elif toks[0] in META_CODES:
        first_flag = 2 if toks[0] == b"VA" else 1
        for i in range(first_flag, len(toks)):
            t = toks[i]
            if len(t) < 2 or not _DIGITS.fullmatch(t[1:]):
                continue
            if t[:1] == b"c":
                toks[i] = b"c" + cas.name(t[1:])
            elif t[:1] == b"t" and int(t[1:]) >= 0:
                toks[i] = b"t~%d" % (-(-int(t[1:]) // 10) * 10)
            elif t[:1] == b"l":
                toks[i] = b"l~%d" % (int(t[1:]) // 10 * 10)
    return b" ".join(toks) + ending


def normalise(units: list[Unit], cas: CasNames) -> bytes:
    return b"".join(normalise_line(u.line, cas) + (u.data or b"") for u in units)


def run_script(
    script: Script,
    addr: str,
    timeout: float = 5.0,
    connector: Callable[[str], socket.socket] = connect,
) -> Transcript:
    """Play SCRIPT against the server at ADDR; return its normalised transcript.

    A step that times out or hits EOF gets a ``<TIMEOUT>``/``<CLOSED>`` marker and ends the script
    (on that connection: later steps on a closed connection record ``<CLOSED>`` without sending).
    """
    socks: dict[int, socket.socket] = {}
    readers: dict[int, Reader] = {}
    cas = CasNames()
    out = Transcript()
    try:
        for step in script.steps:
            if step.conn not in socks:
                socks[step.conn] = connector(addr)
                if socks[step.conn].family != socket.AF_UNIX:
                    socks[step.conn].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                readers[step.conn] = Reader(socks[step.conn], timeout)
            reader = readers[step.conn]
            if reader.closed:
                out.replies.append(CLOSED)
                continue
            try:
                socks[step.conn].sendall(cas.substitute(step.send))
            except OSError:
                reader.closed = True
            units: list[Unit] = []
            marker = b""
            for shape in step.expect.split():
                try:
                    units += read_shape(reader, shape)
                except EOFError:
                    marker = CLOSED
                    break
                except TimeoutError:
                    marker = TIMEOUT
                    break
            if step.expect.split()[-1:] == ["C"] and not marker:
                marker = CLOSED
            raw = b"".join(u.raw() for u in units)
            if step.compare:
                out.replies.append(normalise(units, cas) + marker)
            else:
                ok = step.shape is not None and re.fullmatch(step.shape.encode(), raw, re.S)
                out.replies.append(b"<shape ok>" if ok else b"<shape mismatch>")
                if not ok:
                    out.shape_errors.append(f"{script.name}: {raw[:200]!r} !~ {step.shape}")
            if marker == TIMEOUT:
                break
        if script.sentinel:
            for n, sock in socks.items():
                if readers[n].closed:
                    out.replies.append(b"sentinel:" + CLOSED)
                    continue
                try:
                    sock.sendall(b"mn\r\n")
                    out.replies.append(b"sentinel:" + readers[n].unit().raw())
                except TimeoutError:  # before OSError, its base class
                    out.replies.append(b"sentinel:" + TIMEOUT)
                except (EOFError, OSError):
                    out.replies.append(b"sentinel:" + CLOSED)
    finally:
        for sock in socks.values():
            sock.close()
    return out


@dataclass(frozen=True)
class Mismatch:
    script: str
    step: int  # index into the steps; len(steps)+ for the sentinel
    sent: bytes
    expected: bytes
    got: bytes

    def __str__(self) -> str:
        return (f"{self.script} step {self.step} sent {clip(self.sent)}\n"
                f"    expected {clip(self.expected)}\n    got      {clip(self.got)}")


def clip(b: bytes, n: int = 300) -> str:
    return repr(b) if len(b) <= n else f"{b[:n]!r}...(+{len(b) - n} bytes, {len(b)} total)"


def compare(script: Script, a: Transcript, b: Transcript) -> list[Mismatch]:
    """Step-by-step differences between two transcripts of the same script."""
    out = []
    for i in range(max(len(a.replies), len(b.replies))):
        ra = a.replies[i] if i < len(a.replies) else b"<missing>"
        rb = b.replies[i] if i < len(b.replies) else b"<missing>"
        if ra != rb:
            sent = script.steps[i].send if i < len(script.steps) else b"mn\r\n (sentinel)"
            out.append(Mismatch(script.name, i, sent, ra, rb))
    return out


def reset_memcached(addr: str) -> None:
    """Make a long-lived memcached behave as a fresh one for the next script."""
    with connect(addr) as s:
        s.sendall(b"flush_all\r\nverbosity 0\r\n")
        r = Reader(s, 5.0)
        got = r.unit().raw() + r.unit().raw()
    if got != b"OK\r\nOK\r\n":
        raise RuntimeError(f"reset of {addr} answered {got!r}")
