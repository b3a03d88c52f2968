"""Binary protocol frames: every opcode memcached's binary protocol knows (and some it does not),
quiet variants interleaved with loud ones, CAS taken from earlier answers, and the malformations
a broken client sends (lengths that disagree, missing or extra extras, a key where none belongs)."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

from cacheproxy.protocol.binary import HEADER, REQUEST_MAGIC

from .vocabulary import Command, key, pick, value

OPCODES = {
    "GET": 0x00, "SET": 0x01, "ADD": 0x02, "REPLACE": 0x03, "DELETE": 0x04, "INCR": 0x05, "DECR": 0x06,
    "QUIT": 0x07, "FLUSH": 0x08, "GETQ": 0x09, "NOOP": 0x0A, "VERSION": 0x0B, "GETK": 0x0C, "GETKQ": 0x0D,
    "APPEND": 0x0E, "PREPEND": 0x0F, "SETQ": 0x11, "ADDQ": 0x12, "REPLACEQ": 0x13, "DELETEQ": 0x14, "INCRQ": 0x15,
    "DECRQ": 0x16, "QUITQ": 0x17, "FLUSHQ": 0x18, "APPENDQ": 0x19, "PREPENDQ": 0x1A, "VERBOSITY": 0x1B,
    "TOUCH": 0x1C, "GAT": 0x1D, "GATQ": 0x1E, "SASL_LIST": 0x20, "GATK": 0x23, "GATKQ": 0x24,
}
WEIGHTS = (  # how often each is drawn
    (8, "GET"), (2, "GETQ"), (3, "GETK"), (2, "GETKQ"), (7, "SET"), (2, "SETQ"), (2, "ADD"), (1, "ADDQ"),
    (2, "REPLACE"), (1, "REPLACEQ"), (3, "DELETE"), (1, "DELETEQ"), (3, "INCR"), (2, "DECR"), (1, "INCRQ"),
    (1, "DECRQ"), (2, "APPEND"), (1, "PREPEND"), (0.5, "APPENDQ"), (0.5, "PREPENDQ"), (2, "TOUCH"), (2, "GAT"),
    (1, "GATQ"), (1, "GATK"), (1, "GATKQ"), (1, "NOOP"), (1, "VERSION"), (0.7, "FLUSH"), (0.3, "FLUSHQ"),
    (0.3, "QUIT"), (0.2, "QUITQ"), (0.5, "VERBOSITY"), (0.3, "SASL_LIST"), (0.7, "UNKNOWN"),
)
UNKNOWN = (0x25, 0x30, 0x3F, 0x42, 0x80, 0xFF, 0x1F)  # opcodes memcached 1.6 does not know
STORE = {0x01, 0x02, 0x03, 0x11, 0x12, 0x13}
CONCAT = {0x0E, 0x0F, 0x19, 0x1A}
KEY_ONLY = {0x00, 0x09, 0x0C, 0x0D, 0x04, 0x14}
ARITH = {0x05, 0x06, 0x15, 0x16}
TOUCHING = {0x1C, 0x1D, 0x1E, 0x23, 0x24}
WITH_CAS = STORE | CONCAT | ARITH | {0x04, 0x14}
QUIET = {0x00: 0x09, 0x0C: 0x0D, 0x01: 0x11, 0x02: 0x12, 0x03: 0x13, 0x04: 0x14, 0x05: 0x15, 0x06: 0x16,
         0x0E: 0x19, 0x0F: 0x1A, 0x1D: 0x1E, 0x23: 0x24, 0x08: 0x18}
EXPTIMES = (0, 0, 0, 100, 1000, 0xFFFFFFFF, 2592001, 0x7FFFFFFF, 0x80000000, 2000000000)


def frame(d: dict, cas_values: Sequence[int]) -> bytes:
    """The bytes of frame D: header fields from its entries (lengths computed unless given), a CAS
    of ``"ref:N"`` replaced by the Nth CAS value the server answered (plus ``cas_delta``)."""
    cas = d.get("cas", 0)
    if isinstance(cas, str):
        i = int(cas[4:])
        cas = (cas_values[i - 1] if i <= len(cas_values) else 10**15 + i) + d.get("cas_delta", 0)
        cas &= (1 << 64) - 1
    k, extras, data = d.get("key", b""), d.get("extras", b""), d.get("value", b"")
    header = HEADER.pack(d.get("magic", REQUEST_MAGIC), d["op"], d.get("keylen", len(k)) & 0xFFFF,
                         d.get("extlen", len(extras)) & 0xFF, d.get("datatype", 0), d.get("vbucket", 0),
                         d.get("bodylen", len(extras) + len(k) + len(data)) & 0xFFFFFFFF, d.get("opaque", 0), cas)
    return header + extras + k + data


def body(rng: random.Random, d: dict, name: str) -> None:
    """Fill D's key, extras and value as opcode D["op"] wants them."""
    op, k = d["op"], key(rng, binary=True)
    if op in STORE:
        flags = rng.choice([0, 0, 5, 0xFFFFFFFF])
        d.update(extras=struct.pack(">II", flags, rng.choice(EXPTIMES)), key=k, value=value(rng, len(k), flags))
    elif op in CONCAT:
        d.update(key=k, value=value(rng, len(k)))
    elif op in KEY_ONLY:
        d["key"] = k
    elif op in ARITH:
        delta, initial = rng.choice([1, 5, 0, 2**64 - 1, 2**63]), rng.choice([0, 7, 2**64 - 1])
        d.update(key=k, extras=struct.pack(">QQI", delta, initial, rng.choice([0, 0, 100, 0xFFFFFFFF, 2592001])))
    elif op in TOUCHING:
        d.update(key=k, extras=struct.pack(">I", rng.choice(EXPTIMES)))
    elif op in (0x08, 0x18):
        if rng.random() < 0.5:
            d["extras"] = struct.pack(">I", rng.choice([0, 0, 100]))
    elif op == 0x1B:
        d["extras"] = struct.pack(">I", rng.choice([0, 1]))
    elif name == "UNKNOWN":
        if rng.random() < 0.5:
            d["key"] = k
        if rng.random() < 0.3:
            d["value"] = b"zz" * rng.randint(0, 10)


def lengths(d: dict) -> int:
    return len(d.get("key", b"")) + len(d.get("value", b"")) + len(d.get("extras", b""))


def malform(rng: random.Random, d: dict, first: bool) -> None:
    """One thing a broken client gets wrong in frame D (a wrong magic only on a sequence's first)."""
    how = rng.choice(["keylen_gt_body", "extras_wrong", "extras_missing", "key_missing", "datatype", "vbucket",
                      "body_extra", "bodylen_small", "key_on_noop", "value_on_get", "magic"])
    if how == "keylen_gt_body":
        if lengths(d) + 3 > 0xFFFF:
            d["value"] = d.get("value", b"")[:rng.choice([0, 10, 1000])]  # keylen is 16 bits
        d["keylen"], d["bodylen"] = lengths(d) + 3, lengths(d)
    elif how == "extras_wrong":
        d["extras"] = d.get("extras", b"") + b"\x00\x00\x00\x01"
    elif how == "extras_missing":
        d["extras"] = b""
    elif how == "key_missing":
        d["key"] = b""
    elif how == "datatype":
        d["datatype"] = rng.choice([1, 0x80])
    elif how == "vbucket":
        d["vbucket"] = 0x1234
    elif how == "body_extra":
        d["value"] = d.get("value", b"") + b"zz"
    elif how == "bodylen_small" and lengths(d) >= 1:
        d["bodylen"] = lengths(d) - 1  # desyncs the stream: the rest is read as a new header
    elif how == "key_on_noop":
        d.update(op=rng.choice([0x0A, 0x0B, 0x08]), key=b"k0")
    elif how == "value_on_get":
        d["value"] = b"xx"
    elif how == "magic" and first:
        d["magic"] = rng.choice([0x81, 0x00, 0x79, 0x82])


def binary_command(rng: random.Random, stepwise: bool, first: bool) -> Command:
    name = pick(rng, *WEIGHTS)
    d: dict = {"op": rng.choice(UNKNOWN) if name == "UNKNOWN" else OPCODES[name],
               "opaque": rng.choice([0, 1, 7, 0xDEADBEEF, rng.randint(0, 1000)])}
    body(rng, d, name)
    if d["op"] in WITH_CAS and rng.random() < 0.3:
        if stepwise and rng.random() < 0.7:
            d.update(cas=f"ref:{rng.randint(1, 3)}", cas_delta=rng.choice([0, 0, 0, 1]))
        else:
            d["cas"] = rng.choice([1, 2, 12345, 2**64 - 1])
    elif rng.random() < 0.03:
        d["cas"] = rng.choice([1, 99])
    if rng.random() < 0.1:
        malform(rng, d, first)
    return Command(name, binary=d)


def binary_sequence(rng: random.Random, stepwise: bool, n: int) -> list[Command]:
    """N frames; a third of sequences turn most commands into their quiet variants."""
    commands = [binary_command(rng, stepwise, i == 0) for i in range(n)]
    if rng.random() < 0.3:
        for c in commands:
            if c.binary["op"] in QUIET and rng.random() < 0.7:
                c.binary["op"] = QUIET[c.binary["op"]]
                c.label += "~Q"
    return commands
