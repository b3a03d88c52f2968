"""Rend's GetE/GetEQ (0x40/0x41) through the meta mapping against a real memcached.

memcached itself answers 0x40 with "Unknown command", so this cannot be differential; it
checks the extension's contract: flags + remaining TTL in the extras, quiet misses silent.
"""

from __future__ import annotations

import struct

from cacheproxy.protocol.binary import Op, Status

from tests.binary.harness import Mapped
from tests.binary.scripts import get, store
from tests.support.binary_frames import encode_request, parse_frames


def test_gete_against_memcached(memcached) -> None:
    side = Mapped(memcached.addr)
    try:
        out = side.run(
            store(Op.SETQ, b"ttl", b"value", 0xABCD, 100)
            + store(Op.SETQ, b"forever", b"v", 1)
            + get(Op.GETE, b"ttl", 1)
            + get(Op.GETEQ, b"forever", 2)
            + get(Op.GETEQ, b"missing", 3)
            + get(Op.GETE, b"missing", 4)
            + encode_request(Op.NOOP, opaque=5),
            None,
        )
    finally:
        side.close()
    frames, rest = parse_frames(out)
    assert rest == b""
    assert [(f[0], f[1], f[2]) for f in frames] == [
        (Op.GETE, 0, 1),
        (Op.GETEQ, 0, 2),
        (Op.GETE, Status.KEY_ENOENT, 4),
        (Op.NOOP, 0, 5),
    ]
    flags, ttl = struct.unpack(">II", frames[0][4])
    assert flags == 0xABCD and 98 <= ttl <= 100 and frames[0][6] == b"value" and frames[0][3] != 0
    assert frames[1][4] == struct.pack(">II", 1, 0) and frames[1][6] == b"v"
    assert frames[2][6] == b"Not found"
