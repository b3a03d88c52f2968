"""BinaryParser: chunking-independence, round trips, memcached's answers to bad input, bounded memory."""

from __future__ import annotations

import struct
from itertools import pairwise

from cacheproxy.protocol.binary import (
    BinaryParser,
    BinaryRequest,
    Op,
    Status,
    error_frame,
    frame,
    item_too_large,
)
from cacheproxy.protocol.limits import READ_BUFFER_SIZE
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.binary_frames import encode_request, parse_frames

MAX_ITEM = 4096
keys = st.binary(min_size=1, max_size=250)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
small_values = st.binary(max_size=600)


@st.composite
def requests(draw) -> tuple[bytes, BinaryRequest]:
    """A well-formed request: its bytes and the request the parser must produce."""
    opaque, cas = draw(u32), draw(st.one_of(st.just(0), u64))
    kind = draw(
        st.sampled_from(["store", "concat", "get", "delete", "arith", "touch", "bare", "flush", "stat"])
    )
    if kind == "store":
        op = draw(st.sampled_from([Op.SET, Op.SETQ, Op.ADD, Op.ADDQ, Op.REPLACE, Op.REPLACEQ]))
        key, value, flags, exptime = draw(keys), draw(small_values), draw(u32), draw(u32)
        return (
            encode_request(op, key, struct.pack(">II", flags, exptime), value, opaque=opaque, cas=cas),
            BinaryRequest(op, opaque, cas, key, value, flags=flags, exptime=exptime),
        )
    if kind == "concat":
        op = draw(st.sampled_from([Op.APPEND, Op.APPENDQ, Op.PREPEND, Op.PREPENDQ]))
        key, value = draw(keys), draw(small_values)
        return encode_request(op, key, b"", value, opaque=opaque, cas=cas), BinaryRequest(
            op, opaque, cas, key, value
        )
    if kind in ("get", "delete"):
        ops = (
            [Op.GET, Op.GETQ, Op.GETK, Op.GETKQ, Op.GETE, Op.GETEQ]
            if kind == "get"
            else [Op.DELETE, Op.DELETEQ]
        )
        op, key = draw(st.sampled_from(ops)), draw(keys)
        return encode_request(op, key, opaque=opaque, cas=cas), BinaryRequest(op, opaque, cas, key)
    if kind == "arith":
        op = draw(st.sampled_from([Op.INCREMENT, Op.INCREMENTQ, Op.DECREMENT, Op.DECREMENTQ]))
        key, delta, initial, exptime = draw(keys), draw(u64), draw(u64), draw(u32)
        return (
            encode_request(op, key, struct.pack(">QQI", delta, initial, exptime), opaque=opaque, cas=cas),
            BinaryRequest(op, opaque, cas, key, delta=delta, initial=initial, exptime=exptime),
        )
    if kind == "touch":
        op = draw(st.sampled_from([Op.TOUCH, Op.GAT, Op.GATQ, Op.GATK, Op.GATKQ]))
        key, exptime = draw(keys), draw(u32)
        return (
            encode_request(op, key, struct.pack(">I", exptime), opaque=opaque, cas=cas),
            BinaryRequest(op, opaque, cas, key, exptime=exptime),
        )
    if kind == "flush":
        op, exptime = draw(st.sampled_from([Op.FLUSH, Op.FLUSHQ])), draw(u32)
        extras = draw(st.sampled_from([b"", struct.pack(">I", exptime)]))
        return (
            encode_request(op, b"", extras, opaque=opaque, cas=cas),
            BinaryRequest(op, opaque, cas, exptime=exptime if extras else 0),
        )
    if kind == "stat":
        key = draw(st.sampled_from([b"", b"items", b"settings", b"detail dump"]))
        return encode_request(Op.STAT, key, opaque=opaque, cas=cas), BinaryRequest(Op.STAT, opaque, cas, key)
    op = draw(st.sampled_from([Op.NOOP, Op.VERSION]))
    return encode_request(op, opaque=opaque, cas=cas), BinaryRequest(op, opaque, cas)


def feed_in_chunks(parser: BinaryParser, data: bytes, cuts: list[int]) -> list[BinaryRequest]:
    out: list[BinaryRequest] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in pairwise(points):
        out += parser.feed(data[start:end])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=12), st.lists(st.integers(0, 10**6), max_size=30))
def test_any_split_yields_the_same_requests(pairs, cuts) -> None:
    stream = b"".join(data for data, _ in pairs)
    expected = [request for _, request in pairs]
    assert BinaryParser(MAX_ITEM).feed(stream) == expected
    assert feed_in_chunks(BinaryParser(MAX_ITEM), stream, cuts) == expected
    one_byte = BinaryParser(MAX_ITEM)
    assert [r for i in range(len(stream)) for r in one_byte.feed(stream[i : i + 1])] == expected
    assert one_byte.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 10**4), max_size=20))
def test_arbitrary_bytes_are_split_independent_and_bounded(junk, cuts) -> None:
    whole = BinaryParser(MAX_ITEM)
    expected = whole.feed(junk)
    parser = BinaryParser(MAX_ITEM)
    got: list[BinaryRequest] = []
    points = sorted({c % (len(junk) + 1) for c in cuts} | {0, len(junk)})
    for start, end in pairwise(points):
        got += parser.feed(junk[start:end])
        assert parser.buffered <= max(READ_BUFFER_SIZE, MAX_ITEM)
    assert got == expected
    assert parser.closed == whole.closed
    closers = [r for r in got if r.close]
    assert len(closers) <= 1 and (not closers or got[-1] is closers[0])


def test_response_frames_round_trip() -> None:
    data = frame(Op.GETK, 7, extras=b"\0\0\0\5", key=b"k", value=b"val", cas=99) + error_frame(
        Op.SET, 8, Status.E2BIG
    )
    frames, rest = parse_frames(data)
    assert rest == b""
    assert frames == [
        (Op.GETK, 0, 7, 99, b"\0\0\0\5", b"k", b"val"),
        (Op.SET, 3, 8, 0, b"", b"", b"Too large."),
    ]


def test_wrong_magic_closes_silently() -> None:
    parser = BinaryParser()
    noop = encode_request(Op.NOOP, opaque=1)
    assert parser.feed(noop + b"\x81" + b"\0" * 23 + noop) == [BinaryRequest(Op.NOOP, 1)]
    assert parser.closed
    assert parser.feed(noop) == []


def test_errors_are_memcached_frames() -> None:
    parser = BinaryParser()
    (unknown,) = parser.feed(encode_request(0x50, value=b"xyz", opaque=3))
    assert (
        unknown.error
        == b"\x81\x50" + b"\0" * 4 + b"\x00\x81" + struct.pack(">II", 15, 3) + b"\0" * 8 + b"Unknown command"
    )
    assert not unknown.close and not parser.closed
    (bad,) = parser.feed(encode_request(Op.GET, b"k" * 251, opaque=4))
    assert bad.error == error_frame(Op.GET, 4, Status.EINVAL) and bad.close and parser.closed
    assert bad.error.endswith(b"Invalid arguments")


def test_keylen_beyond_bodylen_is_unknown_command_and_closes() -> None:
    (req,) = BinaryParser().feed(encode_request(Op.SET, b"k", b"12345678", opaque=2, bodylen=5))
    assert req.error == error_frame(Op.SET, 2, Status.UNKNOWN_COMMAND) and req.close


def test_unknown_opcode_swallows_bodylen_after_key_and_extras() -> None:
    parser = BinaryParser()
    noop = encode_request(Op.NOOP, opaque=9)
    got = parser.feed(encode_request(0x50, b"key", b"ex", b"vv", opaque=1) + b"Z" * 5 + noop)
    assert [r.opcode for r in got] == [0x50, Op.NOOP]


def test_oversized_body_is_skipped_not_buffered() -> None:
    parser = BinaryParser(max_item_size=1024)
    claimed = 50 * 1024 * 1024
    header = encode_request(Op.SETQ, b"key", struct.pack(">II", 0, 0), opaque=5, bodylen=claimed + 11)
    (too_large,) = parser.feed(header)
    assert too_large.error == error_frame(Op.SETQ, 5, Status.E2BIG) and too_large.too_large
    chunk = b"\0" * 65536
    for _ in range(claimed // len(chunk)):
        assert parser.feed(chunk) == []
        assert parser.buffered == 0
    assert parser.feed(encode_request(Op.NOOP, opaque=6)) == [BinaryRequest(Op.NOOP, 6)]


def test_too_large_add_does_not_delete_but_set_does() -> None:
    parser = BinaryParser(max_item_size=100)
    add = encode_request(Op.ADD, b"k", struct.pack(">II", 0, 0), b"x" * 200)
    (req,) = parser.feed(add)
    assert req.error is not None and not req.too_large


def test_negative_value_length_swallows_nothing() -> None:
    parser = BinaryParser()
    noop = encode_request(Op.NOOP, opaque=2)
    got = parser.feed(
        encode_request(Op.SET, b"k", struct.pack(">II", 0, 0), opaque=1, bodylen=0xFFFFFFF0) + noop
    )
    assert [r.opcode for r in got] == [Op.SET, Op.NOOP] and got[0].error.endswith(b"Too large.")


def test_fixed_part_over_read_buffer_closes_once_buffer_is_full() -> None:
    parser = BinaryParser()
    data = encode_request(Op.GET, b"k" * 20000)
    assert parser.feed(data[: READ_BUFFER_SIZE - 1]) == [] and not parser.closed
    assert parser.feed(data[READ_BUFFER_SIZE - 1 :]) == [] and parser.closed
    assert parser.buffered == 0


def test_item_size_limit_matches_memcached_formula() -> None:
    # 56 header+cas, key+1, 4 bytes of flags when non-zero, value+2 <= max
    assert not item_too_large(1, 0, 1048576 - 56 - 2 - 2, 1048576)
    assert item_too_large(1, 0, 1048576 - 56 - 2 - 1, 1048576)
    assert item_too_large(1, 1, 1048576 - 56 - 2 - 2, 1048576)


def test_quiet_and_names() -> None:
    req = BinaryRequest(Op.GETKQ, key=b"k")
    assert req.quiet and req.command == Op.GETK and req.name == "getk"
    assert BinaryRequest(0x50).name == "unknown"


@st.composite
def mixed_headers(draw) -> bytes:
    """Request-shaped bytes with arbitrary (often inconsistent) lengths: the error paths."""
    opcode = draw(st.sampled_from([*list(Op), 0x1B, 0x50, 0xFF]))
    keylen, extlen = draw(st.integers(0, 300)), draw(st.sampled_from([0, 4, 8, 20, 7]))
    bodylen = draw(st.one_of(st.integers(0, 400), st.just(keylen + extlen), st.integers(0, 2**32 - 1)))
    payload = draw(st.binary(max_size=500))
    magic = draw(st.sampled_from([0x80] * 20 + [0x81]))
    return struct.pack(">BBHBBHIIQ", magic, opcode, keylen, extlen, 0, 0, bodylen, draw(u32), 0) + payload


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(mixed_headers(), requests().map(lambda pair: pair[0])), max_size=8),
       st.lists(st.integers(0, 10**4), max_size=20))
def test_malformed_streams_are_split_independent_and_bounded(parts, cuts) -> None:
    stream = b"".join(parts)
    whole = BinaryParser(MAX_ITEM)
    expected = whole.feed(stream)
    parser = BinaryParser(MAX_ITEM)
    got: list[BinaryRequest] = []
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for start, end in pairwise(points):
        got += parser.feed(stream[start:end])
        assert parser.buffered <= max(READ_BUFFER_SIZE, MAX_ITEM)
    assert got == expected and parser.closed == whole.closed
    for request in got:  # every error answer is a well-formed memcached error frame
        if request.error is not None:
            (answer,), rest = parse_frames(request.error)
            assert rest == b"" and answer[0] == request.opcode and answer[2] == request.opaque
            assert answer[1] in (Status.UNKNOWN_COMMAND, Status.EINVAL, Status.E2BIG)
