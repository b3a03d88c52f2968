"""What every generator draws from: a command, weighted choice, keys, values and numbers.

The key space is small on purpose (five keys, plus a few edge keys), so sequences keep touching
the same items; the numbers are memcached's edges (32- and 64-bit limits, signs, padding).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

KEYS = (b"k0", b"k1", b"k2", b"k3", b"k4")
ITEM_LIMIT = 1048517  # the largest key + value (+4 with flags) memcached -I 1m stores
CAS_REF = re.compile(rb"<C(\d+)>")  # in a text command: the Nth CAS value the server showed so far


@dataclass
class Command:
    """One command of a sequence: text/meta bytes (with ``<Cn>`` CAS references), or a binary frame
    described by a dict (rendered by :func:`fuzz.differential.binary_gen.frame`). SOLO: sent alone, whole
    (a long line whose answer depends on memcached's read boundaries otherwise)."""

    label: str
    text: bytes = b""
    binary: dict = field(default_factory=dict)
    solo: bool = False

    def render_text(self, cas_values: Sequence[bytes]) -> bytes:
        """The text command's bytes, its ``<Cn>`` references replaced by the CAS values seen."""

        def real(match: re.Match) -> bytes:
            i = int(match.group(1))
            return cas_values[i - 1] if i <= len(cas_values) else b"%d" % (10**15 + i)

        return CAS_REF.sub(real, self.text)

    def __repr__(self) -> str:
        if self.binary:
            shown = {k: (f"<{len(v)} bytes>" if isinstance(v, bytes) and len(v) > 100 else v)
                     for k, v in self.binary.items()}
            return f"BIN{shown}"
        t = self.text
        return repr(t if len(t) < 300 else t[:200] + b"...(%d bytes)" % len(t))


Generator = Callable[[random.Random, bool], Command]  # (rng, stepwise) -> a command


def pick(rng: random.Random, *weighted: tuple[float, T]) -> T:
    """One of the values, by weight: ``pick(rng, (3, a), (1, b))``."""
    x = rng.random() * sum(w for w, _ in weighted)
    for w, v in weighted:
        x -= w
        if x <= 0:
            return v
    return weighted[-1][1]


EDGE_KEYS_TEXT = (b"k\x01", b"\xff\xfe", b"a\tb", b"k\r", b"\x7f", b"\xe2\x82\xac")
EDGE_KEYS_BINARY = (b"k\x00", b"k 1", b"\xff\xfe", b"k\n", b"a\tb", bytes(range(1, 20)), b"\x80")
NEAR_KEYS = (b"x", b"K0", b"k00", b"k0k0")


def key(rng: random.Random, binary: bool = False) -> bytes:
    """Mostly one of KEYS; sometimes 250 or 251 bytes, bytes a protocol refuses, or a near miss."""
    return pick(rng, (85, lambda: rng.choice(KEYS)), (4, lambda: b"k" * 250), (3, lambda: b"k" * 251),
                (4, lambda: rng.choice(EDGE_KEYS_BINARY if binary else EDGE_KEYS_TEXT)),
                (4, lambda: rng.choice(NEAR_KEYS)))()


NUMERIC_VALUES = (b"1", b"10", b"0", b"18446744073709551615", b"18446744073709551614", b"12345678901234567890",
                  b"abc", b" 5", b"5 ", b"-1", b"007", b"99", b"100", b"9" * 25, b"1\r\n2", b"END", b"+3")


def value(rng: random.Random, key_length: int = 2, flags: int = 0) -> bytes:
    """Empty, a number-like value (for incr/decr), short or mid-size bytes, 16 KiB-500 KiB, or
    within a byte of the item size limit."""
    r = rng.random()
    if r < 0.2:
        return b""
    if r < 0.45:
        return rng.choice(NUMERIC_VALUES)
    if r < 0.8:
        n = rng.choice([1, 2, 5, 10, 100, 1000, 3000])
        return bytes(rng.choice(b"abcxyz\r\n \x00\xff") for _ in range(n)) if rng.random() < 0.3 else b"v" * n
    if r < 0.95:
        return b"w" * rng.choice([16384, 65536, 500000])
    limit = ITEM_LIMIT - key_length - (4 if flags else 0)
    return b"L" * rng.choice([limit - 1, limit, limit + 1, limit + 60, 1048576])


EXPTIMES = (b"0", b"0", b"0", b"100", b"1000", b"-1", b"2592001", b"2147483648", b"4294967296", b"99999999999",
            b"abc", b"-0", b"+100", b"01000", b"2000000000", b"-2147483648", b"-2147483649", b"4294967295",
            b"18446744073709551615", b"18446744073709551616", b"2592000", b"0x10", b"1.5", b"-100")
FLAGS = (b"0", b"0", b"0", b"5", b"4294967295", b"4294967296", b"-1", b"abc", b"+5", b"1a")
CAS_TOKENS = (b"0", b"1", b"2", b"abc", b"-1", b"18446744073709551616", b"99999999999", b"18446744073709551615",
              b"00001", b"+1", b"-0", b"1a", b"0x1")


def cas_token(rng: random.Random, stepwise: bool, tokens: Sequence[bytes] = CAS_TOKENS) -> bytes:
    """A CAS argument: in a stepwise sequence mostly a reference to a CAS seen earlier."""
    return b"<C%d>" % rng.randint(1, 3) if stepwise and rng.random() < 0.7 else rng.choice(tokens)
