"""memcached's number parsing (util.c ``safe_strto*``), reproduced bit for bit.

memcached parses with C's strtol family on a 64-bit machine and then stores into narrower
types, so odd inputs have odd but well-defined answers ("4294967297" as a 32-bit flag is 1,
a leading "+" or trailing tab is accepted). A proxy that must answer exactly as memcached does
has to accept and reject the very same tokens.
"""

from __future__ import annotations

_SPACE = b" \t\n\v\f\r"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_OVERFLOW = 1 << 64  # beyond every range checked below


def _scan(token: bytes) -> tuple[int, bool, bool] | None:
    """strtol-style scan: (magnitude, negative, ok_termination) or None when no digits."""
    i, n = 0, len(token)
    while i < n and token[i] in _SPACE:
        i += 1
    neg = False
    if i < n and token[i] in b"+-":
        neg = token[i] == 0x2D
        i += 1
    start = i
    while i < n and 0x30 <= token[i] <= 0x39:
        i += 1
    if i == start:
        return None
    digits = token[start:i].lstrip(b"0")
    # Past 20 significant digits any value overflows 64 bits (C reports ERANGE); int() would also
    # refuse a string over 4,300 digits.
    value = int(digits) if 0 < len(digits) <= 20 else (0 if not digits else _OVERFLOW)
    terminated = i == n or token[i] in _SPACE
    return value, neg, terminated


def strtol64(token: bytes) -> int | None:
    """C ``strtoll``/``strtol`` (64-bit long) with memcached's end check; None on failure."""
    scanned = _scan(token)
    if scanned is None:
        return None
    value, neg, terminated = scanned
    value = -value if neg else value
    if not terminated or value < _INT64_MIN or value > _INT64_MAX:
        return None
    return value


def strtoul64(token: bytes) -> int | None:
    """C ``strtoull`` with memcached's negative-sign rule; the uint64 value or None."""
    scanned = _scan(token)
    if scanned is None:
        return None
    value, neg, terminated = scanned
    if not terminated or value > _UINT64_MAX:
        return None
    if neg:
        value = (-value) & _UINT64_MAX
    if value >= 1 << 63 and b"-" in token:
        return None
    return value


def safe_strtol(token: bytes) -> int | None:
    """``safe_strtol``: a 64-bit parse stored into an int32 (wrapping, as C does)."""
    if len(token) < 10 and token.isdigit():  # plain digits below 2**31: what clients send
        return int(token)
    value = strtol64(token)
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def safe_strtoul(token: bytes) -> int | None:
    """``safe_strtoul``: a 64-bit unsigned parse stored into a uint32."""
    if len(token) < 10 and token.isdigit():
        return int(token)
    value = strtoul64(token)
    return None if value is None else value & 0xFFFFFFFF


def safe_strtoull(token: bytes) -> int | None:
    """``safe_strtoull``: a uint64."""
    return strtoul64(token)
