"""Routing across a tier of real proxy + memcached pairs: every key lives on its owner's
memcached only, whichever proxy wrote it, and reads through any proxy see it; multi-key
answers across owners are byte-exact in text, meta and binary."""

from __future__ import annotations

import base64
import random
import socket
import struct

import pytest

from tests.ring.tier import Tier
from tests.support.procs import start_memcached, talk


@pytest.fixture(scope="module")
def tier():
    t = Tier.start(3)
    yield t
    t.stop()



def test_keys_live_on_their_owner(tier: Tier) -> None:
    rng = random.Random(1)
    keys = [b"route:%d" % i for i in range(600)]
    for i, key in enumerate(keys):
        via = tier.pairs[rng.randrange(3)].addr
        assert talk(via, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(key), key), b"\r\n") == b"STORED\r\n"
        if i % 50 == 0:
            other = tier.pairs[rng.randrange(3)].addr
            assert talk(other, b"get %s\r\n" % key, b"END\r\n") == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (
                key, len(key), key)
    for key in keys:
        owner = tier.owner(key)
        for pair in tier.pairs:
            got = talk(pair.memcached.addr, b"mg %s v\r\n" % key, b"\r\n")
            if pair.index == owner:
                assert got.startswith(b"VA"), (key, pair.index)
            else:
                assert got == b"EN\r\n", (key, pair.index)


def test_multiget_across_owners_is_byte_exact(tier: Tier) -> None:
    """The same commands against one plain memcached and through each proxy: the same bytes."""
    reference = start_memcached()
    try:
        keys = [b"multi:%d" % i for i in range(40)]
        setup = b"".join(b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(k) + i, k + b"x" * i) for i, k in enumerate(keys)
                         if i % 3)
        talk(tier.pairs[0].addr, setup + b"mn\r\n", b"MN\r\n")
        talk(reference.addr, setup + b"mn\r\n", b"MN\r\n")
        text = b"get " + b" ".join(keys) + b"\r\n"
        meta = b"".join(b"mg %s v f k q\r\n" % k for k in keys) + b"mn\r\n"
        meta_b64 = b"mg bXVsdGk6MQ== b v k\r\nmg bXVsdGk6MA== b v k\r\nmn\r\n"
        for addr in [p.addr for p in tier.pairs]:
            assert talk(addr, text, b"END\r\n") == talk(reference.addr, text, b"END\r\n")
            assert talk(addr, meta, b"MN\r\n") == talk(reference.addr, meta, b"MN\r\n")
            assert talk(addr, meta_b64, b"MN\r\n") == talk(reference.addr, meta_b64, b"MN\r\n")
    finally:
        reference.stop()


def binary_frame(opcode: int, key: bytes, opaque: int) -> bytes:
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), 0, 0, 0, len(key), opaque, 0) + key


def test_binary_quiet_multiget_across_owners(tier: Tier) -> None:
    """getkq for many keys on several owners, then noop: the hits in order, byte for byte as
    one memcached answers (CAS values differ between memcacheds, so they are zeroed)."""
    reference = start_memcached()
    try:
        keys = [b"bin:%d" % i for i in range(30)]
        setup = b"".join(b"set %s 5 0 3\r\nabc\r\n" % k for k in keys[::2]) + b"mn\r\n"
        talk(tier.pairs[1].addr, setup, b"MN\r\n")
        talk(reference.addr, setup, b"MN\r\n")
        request = b"".join(binary_frame(0x0D, k, i) for i, k in enumerate(keys)) + binary_frame(0x0A, b"", 999)
        noop_end = struct.pack(">BBHBBHIIQ", 0x81, 0x0A, 0, 0, 0, 0, 0, 999, 0)

        def zero_cas(data: bytes) -> bytes:
            out, pos = bytearray(), 0
            while pos < len(data):
                total = struct.unpack_from(">I", data, pos + 8)[0]
                frame = bytearray(data[pos:pos + 24 + total])
                frame[16:24] = bytes(8)
                out += frame
                pos += 24 + total
            return bytes(out)

        want = zero_cas(talk(reference.addr, request, noop_end))
        assert want.count(b"abc") == 15
        for pair in tier.pairs:
            assert zero_cas(talk(pair.addr, request, noop_end)) == want
    finally:
        reference.stop()


def test_touching_multiget_across_owners_is_byte_exact(tier: Tier) -> None:
    reference = start_memcached()
    try:
        keys = [b"gat:%d" % i for i in range(20)]
        setup = b"".join(b"set %s 3 0 2\r\nhi\r\n" % k for k in keys[1::2]) + b"mn\r\n"
        talk(tier.pairs[2].addr, setup, b"MN\r\n")
        talk(reference.addr, setup, b"MN\r\n")
        for command in (b"gat 100 ", b"get "):
            request = command + b" ".join(keys) + b"\r\n"
            for pair in tier.pairs:
                assert talk(pair.addr, request, b"END\r\n") == talk(reference.addr, request, b"END\r\n")
        # gets/gats carry each owner's own CAS value: the same shape, one VALUE per stored key.
        got = talk(tier.pairs[0].addr, b"gats 100 " + b" ".join(keys) + b"\r\n", b"END\r\n")
        assert [line.split()[1] for line in got.split(b"\r\n") if line.startswith(b"VALUE")] == keys[1::2]
    finally:
        reference.stop()


def test_pipelined_read_after_write_through_a_non_owner(tier: Tier) -> None:
    """set, get, delete, get of keys owned elsewhere, pipelined on one connection: in order."""
    keys = [k for k in (b"raw:%d" % i for i in range(200)) if tier.owner(k) != 0][:50]
    payload = b"".join(b"set %s 0 0 1\r\n1\r\nget %s\r\ndelete %s\r\nget %s\r\n" % (k, k, k, k) for k in keys)
    want = b"".join(b"STORED\r\nVALUE %s 0 1\r\n1\r\nEND\r\nDELETED\r\nEND\r\n" % k for k in keys)
    host, port = tier.pairs[0].addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(want):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
    assert got == want


def test_chunked_values_live_on_their_owner() -> None:
    """With chunking on, a 3 MiB value written through one proxy is read whole through the others,
    and its chunks sit on the owner's memcached only."""
    tier = Tier.start(3, top={"chunking": {"enabled": True}})
    try:
        rng = random.Random(5)
        keys = [b"big:%d" % i for i in range(6)]
        values = {k: rng.randbytes(3 << 20) for k in keys}
        for i, key in enumerate(keys):
            via = tier.pairs[i % 3].addr
            assert talk(via, b"set %s 9 0 %d\r\n%s\r\n" % (key, len(values[key]), values[key]),
                        b"\r\n") == b"STORED\r\n"
        for i, key in enumerate(keys):
            via = tier.pairs[(i + 1) % 3].addr
            got = talk(via, b"get %s\r\n" % key, b"END\r\n")
            assert got == b"VALUE %s 9 %d\r\n%s\r\nEND\r\n" % (key, len(values[key]), values[key])
        for pair in tier.pairs:
            stats = talk(pair.memcached.addr, b"stats\r\n", b"END\r\n")
            items = int(next(line.split()[2] for line in stats.split(b"\r\n") if line.startswith(b"STAT curr_items ")))
            owned = sum(tier.owner(k) == pair.index for k in keys)
            assert (items > 0) == (owned > 0), (pair.index, items, owned)
            assert items >= owned * 4  # a metadata item and at least three 1 MiB chunks per value
    finally:
        tier.stop()


def binary_set(key: bytes, value: bytes, flags: int, opaque: int) -> bytes:
    extras = struct.pack(">II", flags, 0)
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), len(extras), 0, 0, len(body), opaque, 0) + body


def read_frames(sock: socket.socket, count: int) -> list[tuple[int, int, bytes, bytes]]:
    """COUNT response frames: (status, opaque, key, value)."""
    buf, frames = b"", []
    while len(frames) < count:
        while len(buf) < 24 or len(buf) < 24 + struct.unpack_from(">I", buf, 8)[0]:
            chunk = sock.recv(65536)
            assert chunk
            buf += chunk
        _, _, keylen, extlen, _, status, total, opaque, _ = struct.unpack_from(">BBHBBHIIQ", buf)
        body = buf[24:24 + total]
        frames.append((status, opaque, body[extlen:extlen + keylen], body[extlen + keylen:]))
        buf = buf[24 + total:]
    return frames


def test_binary_writes_and_unsafe_keys_reach_their_owner(tier: Tier) -> None:
    """Binary sets through one proxy, getk through another; keys with spaces travel base64 and are
    hashed decoded, so they land on the same owner a text client's key would."""
    keys = [b"binw:%d" % i for i in range(20)] + [b"has space:%d" % i for i in range(10)]
    host, port = tier.pairs[0].addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"".join(binary_set(k, b"v" + k, 7, i) for i, k in enumerate(keys)))
        assert [f[0] for f in read_frames(s, len(keys))] == [0] * len(keys)
    host, port = tier.pairs[2].addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"".join(binary_frame(0x0C, k, i) for i, k in enumerate(keys)))  # getk
        frames = read_frames(s, len(keys))
    assert [(f[0], f[2], f[3]) for f in frames] == [(0, k, b"v" + k) for k in keys]
    for key in keys[20:]:
        owner = tier.pairs[tier.owner(key)].memcached.addr
        token = base64.b64encode(key)
        assert talk(owner, b"mg %s b v\r\n" % token, b"\r\n").startswith(b"VA")
