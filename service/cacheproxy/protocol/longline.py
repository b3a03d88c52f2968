"""Command lines longer than memcached's 2048-byte line limit, shortened before they are forwarded.

Why: memcached closes a connection whose read buffer holds more than 2048 bytes of a non-get line
without its newline. A long line that memcached processes when it arrives whole (in one 16 KiB
read) can, on the proxy's backend connection, straddle one of memcached's reads behind other
requests: memcached then closes that backend connection, and with batching every client with a
request on it gets an error. A meta line is only that long through runs of spaces, numbers padded
with zeros or whitespace, or tokens whose length memcached refuses (a key over 250 bytes, an
opaque over 32, a mode over one letter, an unknown flag); each of these can be shortened without
changing memcached's answer:

* the key keeps 251 bytes when longer (still too long);
* a numeric flag (N, T, R, F, C, J, D) and ``ms``'s length keep their sign and significant digits
  (21 of them when there are more: still an overflow) and the first byte after the digits when it
  ends the number badly (still invalid);
* every other token keeps its first SHORT_TOKEN bytes: memcached reads one letter of a flag, and a
  longer opaque or mode stays too long.
"""

from __future__ import annotations

from typing import Final

from .limits import KEY_MAX_LENGTH

SHORT_TOKEN: Final = 40
NUMERIC_FLAGS: Final = frozenset(b"NTRFCJD")
_SPACE: Final = b" \t\n\v\f\r"  # C isspace(): strtol skips it before a number and accepts it after
_DIGITS: Final = b"0123456789"


def shorten_meta(tokens: list[bytes], ms: bool) -> list[bytes]:
    """TOKENS of a meta command (name, key, flags; for ``ms`` the length after the key), short."""
    out = [tokens[0]]
    if len(tokens) > 1:
        key = tokens[1]
        out.append(key[:KEY_MAX_LENGTH + 1])
    for i, token in enumerate(tokens[2:], 2):
        if ms and i == 2:
            out.append(short_number(token))
        elif token[0] in NUMERIC_FLAGS:
            out.append(token[:1] + short_number(token[1:]))
        else:
            out.append(token[:SHORT_TOKEN])
    return out


def short_number(text: bytes) -> bytes:
    """TEXT as C's strtol family reads it, in few bytes: the same value, overflow or failure."""
    i, n = 0, len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    sign = b""
    if i < n and text[i] in b"+-":
        sign = text[i:i + 1]
        i += 1
    start = i
    while i < n and text[i] in _DIGITS:
        i += 1
    if i == start:
        return text[:SHORT_TOKEN]  # no number: fails however long
    digits = text[start:i].lstrip(b"0")[:21] or b"0"
    ending = b"" if i == n or text[i] in _SPACE else text[i:i + 1]
    return sign + digits + ending
