"""What memcached 1.6 answers an ``ms`` whose value it will not read, before the size check.

The proxy forwards an ``ms`` with its value to the backend, which checks its flags. A value
larger than the item size limit is never forwarded: the proxy answers it (``SERVER_ERROR object
too large for cache``, and the key's old value is dropped). memcached checks the flags *before*
the size, so an oversized ``ms`` with a bad flag gets the flag's error, keeps the old value, and
its data is swallowed all the same. :func:`refusal` makes those checks in memcached's order
(``_meta_flag_preparse``, then the opaque's length, then the mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .numbers import safe_strtol, safe_strtoul, safe_strtoull

MAX_OPAQUE_LENGTH: Final = 32  # MFLAG_MAX_OPAQUE_LENGTH, the 'O' token's length
MODES: Final = frozenset(b"EAPRS")
BASE64: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
KNOWN: Final = frozenset(b"bNTRlOPLkstcfvhuqFCMJDI")
BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format"
BAD_TOKEN: Final = b"CLIENT_ERROR bad token in command line format"
# A flag whose number does not parse, and the error memcached reports for it (F sets none of its own).
NUMBERS: Final = {
    ord("N"): (safe_strtol, BAD_TOKEN), ord("T"): (safe_strtol, BAD_TOKEN), ord("R"): (safe_strtol, BAD_TOKEN),
    ord("F"): (safe_strtoul, None), ord("C"): (safe_strtoull, BAD_TOKEN),
    ord("J"): (safe_strtoull, b"CLIENT_ERROR invalid numeric initial value"),
    ord("D"): (safe_strtoull, b"CLIENT_ERROR invalid numeric delta value"),
}


def refusal(key: bytes, flags: Sequence[bytes]) -> bytes | None:
    """The error line (CRLF included) memcached answers an ``ms`` of KEY with FLAGS (the tokens
    after the value length) before it looks at the value's size; None if it has none."""
    error = BAD_FORMAT
    failed = False
    seen: set[int] = set()
    for token in flags:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return b"CLIENT_ERROR duplicate flag\r\n"
        seen.add(flag)
        if flag not in KNOWN:
            return b"CLIENT_ERROR invalid flag\r\n"
        if flag == ord("b") and not _decodes(key):
            error, failed = b"CLIENT_ERROR error decoding key", True
        elif flag == ord("M") and len(token) != 2:
            error, failed = b"CLIENT_ERROR incorrect length for M token", True
        elif flag in NUMBERS:
            parse, message = NUMBERS[flag]
            if parse(token[1:]) is None:
                failed = True
                error = message or error
    if failed:
        return error + b"\r\n"
    opaque_too_long = any(t[0] == ord("O") and len(t) > MAX_OPAQUE_LENGTH for t in flags)
    mode = next((t[1] for t in flags if t[0] == ord("M")), None)
    if mode is not None and mode not in MODES:
        return b"CLIENT_ERROR invalid mode for ms M token\r\n"
    if opaque_too_long:
        return b"CLIENT_ERROR opaque token too long\r\n"
    return None


def _decodes(key: bytes) -> bool:
    """Whether memcached's base64_decode gives a key: a whole number of 4-character blocks of the
    alphabet (other bytes are skipped), and at most two '=' in the block that ends it."""
    chars = bytes(c for c in key if c in BASE64)
    if not chars or len(chars) % 4:
        return False
    for i in range(0, len(chars), 4):
        pad = chars[i:i + 4].count(b"=")
        if pad:
            return pad < 3
    return True
