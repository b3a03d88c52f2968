"""The differential scripts: every opcode memcached serves over binary, and each outcome.

Each script is a list of steps (request bytes, or a callable receiving the side's latest CAS).
The harness appends a Noop to each step, so every quiet run ends in a Noop as clients send it.
"""

from __future__ import annotations

import struct

from cacheproxy.protocol.binary import Op
from cacheproxy.protocol.limits import ITEM_HEADER

from tests.support.binary_frames import encode_request

MAX_ITEM = 1048576


def store(
    op: int, key: bytes, value: bytes, flags: int = 0, exptime: int = 0, *, cas: int = 0, opaque: int = 0
) -> bytes:
    extras = (
        b"" if op in (Op.APPEND, Op.APPENDQ, Op.PREPEND, Op.PREPENDQ) else struct.pack(">II", flags, exptime)
    )
    return encode_request(op, key, extras, value, opaque=opaque, cas=cas)


def get(op: int, key: bytes, opaque: int = 0) -> bytes:
    return encode_request(op, key, opaque=opaque)


def touch(op: int, key: bytes, exptime: int, opaque: int = 0) -> bytes:
    return encode_request(op, key, struct.pack(">I", exptime), opaque=opaque)


def arith(
    op: int, key: bytes, delta: int, initial: int = 0, exptime: int = 0, *, cas: int = 0, opaque: int = 0
) -> bytes:
    return encode_request(op, key, struct.pack(">QQI", delta, initial, exptime), opaque=opaque, cas=cas)


def simple(op: int, key: bytes = b"", extras: bytes = b"", opaque: int = 0, cas: int = 0) -> bytes:
    return encode_request(op, key, extras, opaque=opaque, cas=cas)


def largest_value(key: bytes, flags: int) -> int:
    """The longest value memcached -I 1m still stores for KEY with FLAGS."""
    return MAX_ITEM - ITEM_HEADER - (len(key) + 1) - (4 if flags else 0) - 2


SCRIPTS: dict[str, list] = {
    "get_family": [
        get(Op.GET, b"k", 1),
        get(Op.GETK, b"k", 2),
        get(Op.GETQ, b"k", 3),
        get(Op.GETKQ, b"k", 4),
        store(Op.SET, b"k", b"hello", 0xDEADBEEF, opaque=5),
        get(Op.GET, b"k", 6),
        get(Op.GETK, b"k", 7),
        get(Op.GETQ, b"k", 8),
        get(Op.GETKQ, b"k", 9),
        store(Op.SET, b"empty", b"", opaque=10),
        get(Op.GET, b"empty", 11),
    ],
    "quiet_multiget": [
        store(Op.SETQ, b"a", b"1") + store(Op.SETQ, b"c", b"3", 7),
        get(Op.GETQ, b"a", 1) + get(Op.GETQ, b"b", 2) + get(Op.GETKQ, b"c", 3) + get(Op.GETKQ, b"d", 4),
        get(Op.GETKQ, b"a", 5) + get(Op.GETK, b"b", 6),
    ],
    "set_cas": [
        store(Op.SET, b"k", b"v1", opaque=1),
        lambda cas: store(Op.SET, b"k", b"v2", cas=cas, opaque=2),
        lambda cas: store(Op.SET, b"k", b"v3", cas=cas + 1000, opaque=3),
        store(Op.SET, b"missing", b"v", cas=12345, opaque=4),
        lambda cas: store(Op.SETQ, b"k", b"v4", cas=cas, opaque=5),
        lambda cas: store(Op.SETQ, b"k", b"v5", cas=cas + 1000, opaque=6),
        get(Op.GET, b"k", 7),
    ],
    "add_replace": [
        store(Op.ADD, b"k", b"v", 3, opaque=1),
        store(Op.ADD, b"k", b"v", opaque=2),
        store(Op.ADDQ, b"k", b"v", opaque=3),
        store(Op.ADDQ, b"k2", b"v", opaque=4),
        store(Op.REPLACE, b"k", b"r", 4, opaque=5),
        store(Op.REPLACE, b"nope", b"r", opaque=6),
        store(Op.REPLACEQ, b"k", b"rq", opaque=7),
        store(Op.REPLACEQ, b"nope", b"r", opaque=8),
        lambda cas: store(Op.REPLACE, b"k", b"rc", cas=cas, opaque=9),
        lambda cas: store(Op.REPLACE, b"k", b"rc", cas=cas + 99, opaque=10),
        lambda cas: store(Op.ADD, b"k", b"ac", cas=cas, opaque=11),
        lambda cas: store(Op.ADD, b"k", b"ac", cas=cas + 99, opaque=12),
        store(Op.ADD, b"absent", b"ac", cas=77, opaque=13),
        get(Op.GET, b"k", 14),
        get(Op.GET, b"k2", 15),
    ],
    "append_prepend": [
        store(Op.APPEND, b"k", b"x", opaque=1),
        store(Op.PREPEND, b"k", b"x", opaque=2),
        store(Op.APPENDQ, b"k", b"x", opaque=3),
        store(Op.PREPENDQ, b"k", b"x", opaque=4),
        store(Op.SET, b"k", b"mid", 9, opaque=5),
        store(Op.APPEND, b"k", b">", opaque=6),
        store(Op.PREPEND, b"k", b"<", opaque=7),
        store(Op.APPENDQ, b"k", b"]", opaque=8),
        store(Op.PREPENDQ, b"k", b"[", opaque=9),
        lambda cas: store(Op.APPEND, b"k", b"!", cas=cas + 5, opaque=10),
        lambda cas: store(Op.APPEND, b"k", b"!", cas=cas, opaque=11),
        get(Op.GET, b"k", 12),
    ],
    "delete": [
        simple(Op.DELETE, b"k", opaque=1),
        simple(Op.DELETEQ, b"k", opaque=2),
        store(Op.SET, b"k", b"v", opaque=3),
        simple(Op.DELETE, b"k", opaque=4),
        store(Op.SET, b"k", b"v", opaque=5),
        simple(Op.DELETEQ, b"k", opaque=6),
        get(Op.GET, b"k", 7),
        store(Op.SET, b"k", b"v", opaque=8),
        lambda cas: simple(Op.DELETE, b"k", opaque=9, cas=cas + 1),
        lambda cas: simple(Op.DELETE, b"k", opaque=10, cas=cas),
    ],
    "incr_decr": [
        arith(Op.INCREMENT, b"n", 1, 0, 0xFFFFFFFF, opaque=1),
        arith(Op.DECREMENT, b"n", 1, 0, 0xFFFFFFFF, opaque=2),
        arith(Op.INCREMENTQ, b"n", 1, 0, 0xFFFFFFFF, opaque=3),
        arith(Op.INCREMENT, b"n", 5, 100, 0, opaque=4),
        arith(Op.INCREMENT, b"n", 5, 100, 0, opaque=5),
        arith(Op.DECREMENT, b"n", 1000, 0, 0, opaque=6),
        arith(Op.INCREMENTQ, b"n", 2**64 - 1, opaque=7),
        arith(Op.INCREMENT, b"n", 3, opaque=8),
        arith(Op.DECREMENTQ, b"n", 1, opaque=9),
        arith(Op.DECREMENT, b"q", 3, 7, 300, opaque=10),
        arith(Op.INCREMENTQ, b"fresh", 1, 42, 0, opaque=11),
        get(Op.GET, b"fresh", 12),
        store(Op.SET, b"s", b"abc", opaque=13),
        arith(Op.INCREMENT, b"s", 1, opaque=14),
        arith(Op.INCREMENTQ, b"s", 1, opaque=15),
        store(Op.SET, b"c", b"10", opaque=16),
        lambda cas: arith(Op.INCREMENT, b"c", 1, cas=cas + 1, opaque=17),
        lambda cas: arith(Op.INCREMENT, b"c", 1, cas=cas, opaque=18),
        arith(Op.INCREMENT, b"big", 1, 2**64 - 1, 0, opaque=19),
        arith(Op.INCREMENT, b"big", 1, opaque=20),
    ],
    "touch_gat": [
        touch(Op.TOUCH, b"k", 100, 1),
        touch(Op.GAT, b"k", 100, 2),
        touch(Op.GATK, b"k", 100, 3),
        touch(Op.GATQ, b"k", 100, 4),
        touch(Op.GATKQ, b"k", 100, 5),
        store(Op.SET, b"k", b"value", 77, opaque=6),
        touch(Op.TOUCH, b"k", 100, 7),
        touch(Op.GAT, b"k", 0, 8),
        touch(Op.GATK, b"k", 100, 9),
        touch(Op.GATQ, b"k", 100, 10),
        touch(Op.GATKQ, b"k", 100, 11),
        touch(Op.TOUCH, b"k", 2**31 + 5, 12),
        get(Op.GET, b"k", 13),
    ],
    "noop_version_quit": [simple(Op.NOOP, opaque=1), simple(Op.VERSION, opaque=2), simple(Op.QUIT, opaque=3)],
    "quitq": [simple(Op.VERSION, opaque=1), simple(Op.QUITQ, opaque=2)],
    "flush": [
        store(Op.SET, b"k", b"v"),
        simple(Op.FLUSH, opaque=1),
        get(Op.GET, b"k", 2),
        store(Op.SET, b"k", b"v"),
        simple(Op.FLUSHQ, opaque=3),
        get(Op.GET, b"k", 4),
        simple(Op.FLUSH, extras=struct.pack(">I", 0), opaque=5),
        simple(Op.FLUSH, extras=struct.pack(">I", 3600), opaque=6),
        simple(Op.FLUSHQ, extras=struct.pack(">I", 3600), opaque=7),
    ],
    "stats": [
        store(Op.SET, b"k", b"v"),
        simple(Op.STAT, opaque=1),
        simple(Op.STAT, b"items", opaque=2),
        simple(Op.STAT, b"slabs", opaque=3),
        simple(Op.STAT, b"settings", opaque=4),
        simple(Op.STAT, b"sizes", opaque=5),
        simple(Op.STAT, b"conns", opaque=6),
        simple(Op.STAT, b"bogus", opaque=7),
        simple(Op.STAT, b"detail on", opaque=8),
        get(Op.GET, b"p:x"),
        simple(Op.STAT, b"detail dump", opaque=9),
        simple(Op.STAT, b"detail off", opaque=10),
        simple(Op.STAT, b"detail what", opaque=11),
        simple(Op.STAT, b"reset", opaque=12),
        simple(Op.STAT, b"resetting", opaque=13),
    ],
    "binary_keys": [
        store(Op.SET, b"with space", b"v1", opaque=1),
        get(Op.GETK, b"with space", 2),
        store(Op.SET, b"ctl\x00\x01\r\n\t", b"v2", 5, opaque=3),
        get(Op.GETK, b"ctl\x00\x01\r\n\t", 4),
        store(Op.SET, "ключ".encode(), b"v3", opaque=5),
        get(Op.GETKQ, "ключ".encode(), 6),
        store(Op.SET, b"\xff" * 250, b"v4", opaque=7),
        get(Op.GETK, b"\xff" * 250, 8),
        store(Op.SET, b" " * 186, b"v5", opaque=9),
        get(Op.GETK, b" " * 186, 10),
        simple(Op.DELETE, b"with space", opaque=11),
        arith(Op.INCREMENT, b"a b", 1, 5, 0, opaque=12),
        touch(Op.GATK, b"ctl\x00\x01\r\n\t", 10, 13),
        simple(Op.DELETE, b"with space", opaque=14),
        store(Op.SET, b"a\tb", b"tab", opaque=15),
        get(Op.GETK, b"a\tb", 16),
    ],
    "too_large": [
        store(Op.SET, b"k", b"old", opaque=1),
        store(Op.SET, b"k", b"x" * (largest_value(b"k", 0) + 1), opaque=2),
        get(Op.GET, b"k", 3),
        store(Op.SET, b"k", b"x" * largest_value(b"k", 0), opaque=4),
        get(Op.GETQ, b"nope", 5),
        store(Op.SET, b"f", b"y" * largest_value(b"f", 1), 1, opaque=6),
        store(Op.SET, b"f", b"y" * (largest_value(b"f", 1) + 1), 1, opaque=7),
        store(Op.SETQ, b"f", b"y" * (largest_value(b"f", 1) + 1), 1, opaque=8),
        store(Op.SET, b"a", b"old", opaque=9),
        store(Op.ADD, b"a", b"z" * 2_000_000, opaque=10),
        store(Op.REPLACE, b"a", b"z" * 2_000_000, opaque=11),
        store(Op.APPEND, b"a", b"z" * 2_000_000, opaque=12),
        store(Op.PREPENDQ, b"a", b"z" * 2_000_000, opaque=13),
        get(Op.GET, b"a", 14),
        store(Op.SET, b"k", b"x" * (largest_value(b"k", 0) - 1), opaque=15),
        store(Op.APPEND, b"k", b"xy", opaque=16),
        encode_request(Op.SET, b"k", struct.pack(">II", 0, 0), opaque=17, bodylen=0xFFFFFFF0),
    ],
    "unknown_opcodes": [
        simple(0x50, opaque=1),
        encode_request(0x50, value=b"body", opaque=2),
        encode_request(0x50, b"key", b"ex", b"vv", opaque=3) + b"Z" * 5,
        simple(0x30, opaque=4),
        simple(0xFF, opaque=5),
        simple(0x1B, opaque=6),
        simple(Op.SASL_LIST_MECHS, opaque=7),
        encode_request(Op.SASL_AUTH, b"PLAIN", value=b"xx", opaque=8),
        encode_request(Op.SASL_STEP, b"PLAIN", opaque=9),
        touch(Op.TOUCH, b"k", 1, 10)[:8]
        + struct.pack(">I", 5 + 24)
        + touch(Op.TOUCH, b"k", 1, 10)[12:]
        + simple(Op.NOOP, opaque=11),
        # (a history-free group: "items" would compare the two servers' slab classes)
        encode_request(Op.STAT, b"settings", opaque=12, bodylen=8 + 24) + simple(Op.VERSION, opaque=13),
    ],
}

# Each of these makes memcached close the connection; the harness checks both sides close.
CLOSING: dict[str, list] = {
    "bad_magic": [simple(Op.NOOP, opaque=1), b"\x81" + b"\0" * 23],
    "keylen_over_bodylen": [encode_request(Op.GET, b"abc", opaque=1, bodylen=2)],
    "extras_over_bodylen": [encode_request(Op.SET, b"k", b"12345678", opaque=1, bodylen=8)],
    "key_too_long": [get(Op.GET, b"k" * 251, 1)],
    "key_too_long_unknown_op": [encode_request(0x50, b"k" * 251, opaque=1)],
    "key_over_read_buffer": [get(Op.GET, b"k" * 16361, 1)],
    "get_with_extras": [encode_request(Op.GET, b"k", b"ee", opaque=1)],
    "get_without_key": [simple(Op.GETQ, opaque=1)],
    "get_with_body": [encode_request(Op.GET, b"k", value=b"v", opaque=1)],
    "set_bad_extras": [encode_request(Op.SET, b"k", b"1234", b"v", opaque=1)],
    "set_without_key": [encode_request(Op.SETQ, b"", b"12345678", b"v", opaque=1)],
    "delete_with_extras": [encode_request(Op.DELETE, b"k", b"1234", opaque=1)],
    "incr_bad_extras": [encode_request(Op.INCREMENT, b"k", b"1" * 8, opaque=1)],
    "incr_with_value": [encode_request(Op.INCREMENTQ, b"k", b"1" * 20, b"v", opaque=1)],
    "append_with_extras": [encode_request(Op.APPEND, b"k", b"12345678", b"v", opaque=1)],
    "touch_without_extras": [encode_request(Op.TOUCH, b"k", opaque=1)],
    "gat_without_key": [encode_request(Op.GATQ, b"", b"1234", opaque=1)],
    "noop_with_body": [encode_request(Op.NOOP, value=b"x", opaque=1)],
    "version_with_key": [encode_request(Op.VERSION, b"k", opaque=1)],
    "quit_with_extras": [encode_request(Op.QUITQ, b"", b"1234", opaque=1)],
    "flush_bad_extras": [encode_request(Op.FLUSH, b"", b"12", opaque=1)],
    "flush_with_key": [encode_request(Op.FLUSH, b"k", opaque=1)],
    "stat_with_extras": [encode_request(Op.STAT, b"", b"1234", opaque=1)],
    "sasl_list_with_body": [encode_request(Op.SASL_LIST_MECHS, value=b"x", opaque=1)],
    "sasl_auth_without_key": [encode_request(Op.SASL_AUTH, value=b"x", opaque=1)],
    "quit": [
        store(Op.SETQ, b"k", b"v"),
        get(Op.GET, b"k", 1) + simple(Op.QUIT, opaque=2) + get(Op.GET, b"k", 3),
    ],
    "quitq": [simple(Op.QUITQ, opaque=1)],
    "error_then_more": [
        get(Op.GET, b"k", 1) + encode_request(Op.GET, b"k", b"e", opaque=2) + get(Op.GET, b"k", 3)
    ],
}
