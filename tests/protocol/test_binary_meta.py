"""binary_meta: the meta command for each binary request and the frame for each meta reply."""

from __future__ import annotations

import struct

import pytest
from cacheproxy.protocol.binary import BinaryParser, BinaryRequest, Op, Status, error_frame, frame
from cacheproxy.protocol.binary_meta import LOCAL, from_meta, meta_key, to_meta
from cacheproxy.protocol.meta import LINE, LINES, META, READERS

from tests.support.binary_frames import parse_frames


def answer_of(request: BinaryRequest, reply: bytes) -> bytes:
    """from_meta on the backend bytes REPLY, read as the backend connection reads them (b"":
    answered locally)."""
    if not reply:
        return from_meta(request, None)
    read = READERS[to_meta(request).shape](reply, 0)
    assert read is not None and read[1] == len(reply), reply
    return from_meta(request, read[0])


@pytest.mark.parametrize(
    ("request_", "command", "shape"),
    [
        (BinaryRequest(Op.GET, key=b"k"), b"mg k v f c\r\n", META),
        (BinaryRequest(Op.GETKQ, key=b"k"), b"mg k v f c\r\n", META),
        (BinaryRequest(Op.GETE, key=b"k"), b"mg k v f c t\r\n", META),
        (BinaryRequest(Op.GATQ, key=b"k", exptime=30), b"mg k v f c T30\r\n", META),
        (BinaryRequest(Op.TOUCH, key=b"k", exptime=2**32 - 1), b"mg k f c T2147483647\r\n", META),
        (
            BinaryRequest(Op.SETQ, key=b"k", value=b"abc", flags=5, exptime=9),
            b"ms k 3 F5 T9 MS c\r\nabc\r\n",
            META,
        ),
        (BinaryRequest(Op.ADD, cas=7, key=b"k", value=b""), b"ms k 0 F0 T0 MS c C7\r\n\r\n", META),
        (BinaryRequest(Op.ADD, key=b"k", value=b"v"), b"ms k 1 F0 T0 ME c\r\nv\r\n", META),
        (BinaryRequest(Op.PREPENDQ, cas=3, key=b"k", value=b"v"), b"ms k 1 MP c C3\r\nv\r\n", META),
        (BinaryRequest(Op.DELETE, cas=3, key=b"k"), b"md k C3\r\n", META),
        (
            BinaryRequest(Op.INCREMENT, key=b"k", delta=2, initial=10, exptime=60),
            b"ma k N60 J10 D2 MI v c\r\n",
            META,
        ),
        (
            BinaryRequest(Op.DECREMENTQ, key=b"k", delta=2, exptime=0xFFFFFFFF),
            b"ma k D2 MD v c\r\n",
            META,
        ),
        (BinaryRequest(Op.NOOP), b"mn\r\n", META),
        (BinaryRequest(Op.VERSION), b"version\r\n", LINE),
        (BinaryRequest(Op.FLUSHQ, exptime=10), b"flush_all 10\r\n", LINE),
        (BinaryRequest(Op.STAT), b"stats\r\n", LINES),
        (BinaryRequest(Op.STAT, key=b"resetting"), b"stats reset\r\n", LINE),
        (BinaryRequest(Op.STAT, key=b"detail dump"), b"stats detail dump\r\n", LINES),
        (BinaryRequest(Op.GET, key=b"a b"), b"mg YSBi v f c b\r\n", META),
    ],
)
def test_to_meta(request_: BinaryRequest, command: bytes, shape: int) -> None:
    call = to_meta(request_)
    assert (call.command, call.shape) == (command, shape)


def test_local_answers() -> None:
    assert to_meta(BinaryRequest(Op.QUIT)) is LOCAL
    assert answer_of(BinaryRequest(Op.QUIT, 4), b"") == frame(Op.QUIT, 4)
    assert answer_of(BinaryRequest(Op.QUITQ, 4), b"") == b""
    assert to_meta(BinaryRequest(Op.STAT, key=b"conns")) is LOCAL
    assert answer_of(BinaryRequest(Op.STAT, 2, key=b"conns"), b"") == error_frame(
        Op.STAT, 2, Status.KEY_ENOENT
    )


def test_too_large_set_deletes_the_key() -> None:
    (req,) = BinaryParser(100).feed(
        struct.pack(">BBHBBHIIQ", 0x80, Op.SET, 1, 8, 0, 0, 9 + 500, 1, 0) + b"\0" * 8 + b"k" + b"v" * 500
    )
    assert to_meta(req).command == b"md k\r\n"
    assert answer_of(req, b"HD\r\n") == answer_of(req, b"NF\r\n") == error_frame(Op.SET, 1, Status.E2BIG)


def test_meta_key_encoding() -> None:
    assert meta_key(b"plain") == (b"plain", False)
    assert meta_key(b"\x00") == (b"AA==", True)
    assert meta_key(b" " * 186)[1] is True
    assert meta_key(b" " * 187) is None  # base64 would exceed 250 bytes
    assert meta_key(b"\t" * 200) == (b"\t" * 200, False)  # tokenizer-safe: sent raw
    long_unsafe = BinaryRequest(Op.GET, 1, key=b" " * 200)
    assert to_meta(long_unsafe) is LOCAL
    assert answer_of(long_unsafe, b"") == error_frame(Op.GET, 1, Status.EINVAL)


def test_get_family_replies() -> None:
    hit = b"VA 3 f5 c77\r\nabc\r\n"
    assert answer_of(BinaryRequest(Op.GETK, 1, key=b"k"), hit) == frame(
        Op.GETK, 1, extras=struct.pack(">I", 5), key=b"k", value=b"abc", cas=77
    )
    assert answer_of(BinaryRequest(Op.GETQ, 1, key=b"k"), b"EN\r\n") == b""
    assert answer_of(BinaryRequest(Op.GETK, 1, key=b"k"), b"EN\r\n") == frame(Op.GETK, 1, status=1, key=b"k")
    assert answer_of(BinaryRequest(Op.TOUCH, 1, key=b"k"), b"HD f5 c77\r\n") == frame(
        Op.TOUCH, 1, extras=struct.pack(">I", 5), cas=77
    )


def test_gete_carries_flags_and_remaining_ttl() -> None:
    got = answer_of(BinaryRequest(Op.GETEQ, 9, key=b"k"), b"VA 2 f3 c8 t120\r\nhi\r\n")
    assert parse_frames(got)[0] == [(Op.GETEQ, 0, 9, 8, struct.pack(">II", 3, 120), b"", b"hi")]
    forever = answer_of(BinaryRequest(Op.GETE, 9, key=b"k"), b"VA 2 f3 c8 t-1\r\nhi\r\n")
    assert parse_frames(forever)[0][0][4] == struct.pack(">II", 3, 0)
    assert answer_of(BinaryRequest(Op.GETEQ, 9, key=b"k"), b"EN\r\n") == b""
    assert answer_of(BinaryRequest(Op.GETE, 9, key=b"k"), b"EN\r\n") == error_frame(
        Op.GETE, 9, Status.KEY_ENOENT
    )


@pytest.mark.parametrize(
    ("request_", "reply", "status"),
    [
        (BinaryRequest(Op.ADD, key=b"k"), b"NS c0\r\n", Status.KEY_EEXISTS),
        (BinaryRequest(Op.REPLACE, key=b"k"), b"NS c0\r\n", Status.KEY_ENOENT),
        (BinaryRequest(Op.APPENDQ, key=b"k"), b"NS c0\r\n", Status.NOT_STORED),
        (BinaryRequest(Op.SETQ, cas=4, key=b"k"), b"EX c0\r\n", Status.KEY_EEXISTS),
        (BinaryRequest(Op.SET, cas=4, key=b"k"), b"NF c0\r\n", Status.KEY_ENOENT),
        (BinaryRequest(Op.SET, key=b"k"), b"SERVER_ERROR object too large for cache\r\n", Status.E2BIG),
        (
            BinaryRequest(Op.INCREMENTQ, key=b"k"),
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            Status.DELTA_BADVAL,
        ),
        (BinaryRequest(Op.DELETEQ, key=b"k"), b"NF\r\n", Status.KEY_ENOENT),
        (BinaryRequest(Op.FLUSH), b"CLIENT_ERROR flush_all not allowed\r\n", Status.AUTH_ERROR),
    ],
)
def test_error_replies(request_: BinaryRequest, reply: bytes, status: int) -> None:
    assert answer_of(request_, reply) == error_frame(request_.opcode, request_.opaque, status)


def test_quiet_successes_are_silent() -> None:
    assert answer_of(BinaryRequest(Op.SETQ, key=b"k"), b"HD c5\r\n") == b""
    assert answer_of(BinaryRequest(Op.INCREMENTQ, key=b"k"), b"VA 1 c5\r\n6\r\n") == b""
    assert answer_of(BinaryRequest(Op.FLUSHQ), b"OK\r\n") == b""
    assert answer_of(BinaryRequest(Op.INCREMENT, 2, key=b"k"), b"VA 2 c5\r\n16\r\n") == frame(
        Op.INCREMENT, 2, value=struct.pack(">Q", 16), cas=5
    )


def test_stats_listing() -> None:
    got = answer_of(BinaryRequest(Op.STAT, 3), b"STAT pid 12\r\nSTAT version 1.6.18 x\r\nEND\r\n")
    assert parse_frames(got)[0] == [
        (Op.STAT, 0, 3, 0, b"", b"pid", b"12"),
        (Op.STAT, 0, 3, 0, b"", b"version", b"1.6.18 x"),
        (Op.STAT, 0, 3, 0, b"", b"", b""),
    ]
