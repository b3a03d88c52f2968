"""Comparing two transcripts: where they first differ, the shape of an answer (its signature
part), and the differences memcached makes on purpose.

memcached closes the connection on some errors and throws away answers it had queued; the proxy
sends them (docs/memcached-behaviour.md): ``drop-on-close``; when the reset of a close with input
unread cuts an answer memcached was still writing: ``cut-on-close``. It holds the answer to an unknown
binary opcode until it has skipped the bytes the frame announced; the proxy answers at once
(docs/binary-protocol.md): ``answered-early``. Whether it closes on a text line over 2048 bytes
or answers it depends on where its reads end; the proxy always closes (docs/memcached-behaviour.md):
``long-line``. The chunked layout takes values memcached refuses as too large: ``over-limit``.
Anything else is ``new``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cacheproxy.protocol.limits import LINE_LIMIT

from .play import NOT_SENT, Case, Transcript, render
from .vocabulary import ITEM_LIMIT

Difference = tuple[int, int, bytes, bytes]  # step, answer, memcached's, the proxy's
ENDS = (b"<closed>", b"<timeout>", b"<none>")


def first_difference(a: Transcript, b: Transcript) -> Difference | None:
    for step in range(max(len(a), len(b))):
        sa, sb = (a[step] if step < len(a) else []), (b[step] if step < len(b) else [])
        for i in range(max(len(sa), len(sb))):
            ua, ub = (sa[i] if i < len(sa) else b"<none>"), (sb[i] if i < len(sb) else b"<none>")
            if ua != ub:
                return step, i, ua, ub
    return None


def shape(answer: bytes) -> bytes:
    return b"<end>" if answer in ENDS else re.sub(rb"\d+", b"N", answer.split(b"\n", 1)[0][:60])


def flat(t: Transcript) -> list[bytes]:
    return [u for s in t for u in s if u != NOT_SENT]


def dropped_on_close(a: Transcript, b: Transcript) -> bool:
    """memcached closed, and its answers are the proxy's less some it threw away before closing."""
    flat_a, flat_b = flat(a), flat(b)
    return (flat_a[-1:] == [b"<closed>"] and flat_b[-1:] == [b"<closed>"] and len(flat_b) > len(flat_a)
            and flat_b[:len(flat_a) - 1] == flat_a[:-1])


def cut_on_close(a: Transcript, b: Transcript) -> bool:
    """Both closed with input unread, and the kernel's reset cut short an answer memcached was still
    writing (docs/memcached-behaviour.md, "Closing with input unread"): its answers are the proxy's
    up to that one, of which it got a byte prefix (a ``VALUE`` line, then at most an unfinished
    line: the part of the data that arrived)."""
    flat_a, flat_b = flat(a), flat(b)
    if flat_a[-1:] != [b"<closed>"] or flat_b[-1:] != [b"<closed>"]:
        return False
    at = next((i for i, (x, y) in enumerate(zip(flat_a, flat_b, strict=False)) if x != y), len(flat_a))
    if at >= len(flat_a) - 1 or at >= len(flat_b) - 1:
        return False
    cut, rest = flat_a[at], flat_a[at + 1:-1]
    return flat_b[at].startswith(cut) and len(rest) <= 1 and all(b"\n" not in u for u in rest)


UNKNOWN_COMMAND = re.compile(rb"\('0x81', '0x[0-9a-f]+', '0x81', ")  # a binary answer: status 0x81


def answered_early(a: Transcript, b: Transcript) -> bool:
    """memcached still waits for bytes an unknown binary command announced (its step times out);
    the proxy already answered it ``Unknown command`` (docs/binary-protocol.md)."""
    for sa, sb in zip(a, b, strict=False):
        if sa != sb:
            extra = sb[len(sa) - 1:-1]
            return (sa[-1:] == sb[-1:] == [b"<timeout>"] and sb[:len(sa) - 1] == sa[:-1] and bool(extra)
                    and all(UNKNOWN_COMMAND.match(u) for u in extra))
    return False


def long_line(case: Case) -> bool:
    """A text line over memcached's 2048-byte limit that is not a get: memcached closes on it or
    answers it depending on how much of it one of its reads brings (docs/memcached-behaviour.md)."""
    sent = render(case.commands, [], []) if case.protocol == "text" else b""
    return any(len(line) > LINE_LIMIT and not line.lstrip(b" ").startswith((b"get ", b"gets "))
               for line in sent.split(b"\n"))


def closed_on_long_line(a: Transcript, b: Transcript, case: Case) -> bool:
    """The proxy closed where memcached, having read a long line whole, refused it as a command
    (not where memcached stored or served something: that would be the proxy's fault)."""
    d = first_difference(a, b)
    return (d is not None and d[3] == b"<closed>" and d[2].startswith((b"ERROR", b"CLIENT_ERROR"))
            and long_line(case))


TOO_LARGE = re.compile(rb"SERVER_ERROR object too large for cache\r\n|\('0x81', '0x[0-9a-f]+', '0x3', ")


NOT_STORED = re.compile(rb"NOT_STORED\r\n|NS\b|\('0x81', '0x[0-9a-f]+', '0x5', ")
STORED = re.compile(rb"STORED\r\n|HD\b|\('0x81', '0x[0-9a-f]+', '0x0', ")
GROWS = re.compile(rb"(append|prepend) |ms .* M[AaPp][ \r\n]")


def over_limit(a: Transcript, b: Transcript, case: Case) -> bool:
    """memcached refused a value as too large, or an append or prepend that would no longer fit
    (``NOT_STORED``, when the case sent enough bytes for an item to reach the limit); the chunked
    layout, whose purpose is to store it (docs/chunking.md), answered as memcached would a smaller
    one (STORED, NOT_STORED, a bad data chunk, ...). What follows differs in consequence (the proxy
    then serves the value). Which answer a smaller value gets is not checked here:
    tests/handlers/test_chunked_semantics.py does that."""
    d = first_difference(a, b)
    if d is None:
        return False
    if TOO_LARGE.match(d[2]):
        return not TOO_LARGE.match(d[3])
    sent = sum(len(c.text) + len(c.binary.get("value", b"")) for c in case.commands)
    grows = any(c.label.startswith(("APPEND", "PREPEND")) or GROWS.match(c.text) for c in case.commands)
    return sent >= ITEM_LIMIT and grows and bool(NOT_STORED.match(d[2]) and STORED.match(d[3]))


CLASSES: tuple[tuple[str, Callable[[Transcript, Transcript, Case], bool]], ...] = (
    ("drop-on-close", lambda a, b, case: dropped_on_close(a, b)),
    ("cut-on-close", lambda a, b, case: cut_on_close(a, b)),
    ("answered-early", lambda a, b, case: answered_early(a, b)),
    ("long-line", closed_on_long_line),
)
CHUNKED_CLASSES = (*CLASSES, ("over-limit", over_limit))


def classify(a: Transcript, b: Transcript, case: Case, chunked: bool = False) -> str:
    """Which of memcached's deliberate differences A (memcached's) and B (the proxy's) show for
    CASE, or "new". CHUNKED: the proxy chunks values over the item size limit."""
    return next((name for name, shows in (CHUNKED_CLASSES if chunked else CLASSES) if shows(a, b, case)), "new")
