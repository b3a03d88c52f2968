"""memcached 1.6's own limits, shared by the text, meta and binary parsers."""

from __future__ import annotations

from typing import Final

KEY_MAX_LENGTH: Final = 250
DEFAULT_ITEM_SIZE: Final = 1 << 20  # memcached's -I default
LINE_LIMIT: Final = 2048  # bytes of a non-get line memcached holds without its newline before it closes
READ_BUFFER_SIZE: Final = 16384  # memcached's per-connection read buffer
ITEM_HEADER: Final = 48 + 8  # sizeof(item) + the CAS field on 64-bit memcached (CAS enabled)


def item_fits(nkey: int, flags: int, nbytes: int, max_item_size: int) -> bool:
    """memcached's ``item_size_ok``: does an item with a value of NBYTES (CRLF included) fit?"""
    return ITEM_HEADER + nkey + 1 + (4 if flags else 0) + nbytes <= max_item_size
