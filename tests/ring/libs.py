"""The real client libraries the ring must agree with, driven live: libmemcached (through
ctypes, and through pylibmc storing into real memcacheds) and twemproxy (a real ``nutcracker`` over real memcacheds).

Each answers "which member owns this key" for a member list, without any code of ours.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from tests.support.procs import Proc, free_port, recv_until, wait_connectable

try:
    import pylibmc  # optional: needs libmemcached-dev to build (scripts/setup.sh --test installs it)
except ImportError:
    pylibmc = None

# libmemcached-1.0/types/behavior.h, hash.h, server_distribution.h (KETAMA_WEIGHTED selects
# MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED and MD5)
BEHAVIOR_HASH, BEHAVIOR_DISTRIBUTION, BEHAVIOR_KETAMA_WEIGHTED = 2, 9, 16
HASH_MD5, DISTRIBUTION_CONSISTENT_WEIGHTED = 1, 5
NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"


def load_libmemcached() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("memcached") or "libmemcached.so.11"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.memcached_create.restype = ctypes.c_void_p
    lib.memcached_create.argtypes = [ctypes.c_void_p]
    lib.memcached_free.argtypes = [ctypes.c_void_p]
    lib.memcached_server_add_with_weight.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16,
                                                     ctypes.c_uint32]
    lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.memcached_behavior_get.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.memcached_behavior_get.restype = ctypes.c_uint64
    lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.memcached_generate_hash.restype = ctypes.c_uint32
    return lib


def libmemcached_owners(lib: ctypes.CDLL, servers: Sequence[tuple[str, int, int]],
                        keys: Sequence[bytes]) -> list[int]:
    """libmemcached's server index for each key, for SERVERS as (host, port, weight), with
    MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (which also selects MD5 for keys and points)."""
    memc = lib.memcached_create(None)
    try:
        for host, port, weight in servers:
            assert lib.memcached_server_add_with_weight(memc, host.encode(), port, weight) == 0
        assert lib.memcached_behavior_set(memc, BEHAVIOR_KETAMA_WEIGHTED, 1) == 0
        # What the behaviour turned on (also proves the enum values above).
        assert lib.memcached_behavior_get(memc, BEHAVIOR_DISTRIBUTION) == DISTRIBUTION_CONSISTENT_WEIGHTED
        assert lib.memcached_behavior_get(memc, BEHAVIOR_HASH) == HASH_MD5
        assert lib.memcached_behavior_get(memc, BEHAVIOR_KETAMA_WEIGHTED) == 1
        return [lib.memcached_generate_hash(memc, key, len(key)) for key in keys]
    finally:
        lib.memcached_free(memc)


def pylibmc_owners(backends: Sequence[Proc], keys: Sequence[bytes], batch: int = 1000) -> list[int]:
    """Store KEYS with pylibmc (``ketama_weighted``) over BACKENDS, then ask each memcached which
    keys it holds: where the real client put each key."""
    assert pylibmc is not None
    for proc in backends:
        ask(proc.addr, [b"flush_all\r\n"], b"OK\r\n")
    # no_block: pipelined sets (a key that was not stored shows up as owned by nobody, -1).
    client = pylibmc.Client([p.addr for p in backends], binary=False,
                            behaviors={"ketama_weighted": True, "no_block": True, "tcp_nodelay": True})
    try:
        for i in range(0, len(keys), batch):
            failed = client.set_multi({k: b"x" for k in keys[i:i + batch]})
            assert not failed, failed[:5]
        client.get(keys[0])  # a round trip: every set sent before it has been answered
    finally:
        client.disconnect_all()
    return where_stored(backends, keys)


def where_stored(backends: Sequence[Proc], keys: Sequence[bytes]) -> list[int]:
    """Which memcached of BACKENDS holds each key (-1: none)."""
    where: dict[bytes, int] = {}
    for index, proc in enumerate(backends):
        for key in dump_keys(proc.addr):
            assert key not in where, f"{key!r} on two servers"
            where[key] = index
    # lru_crawler metadump can miss an item the LRU maintainer moves while it walks: ask
    # each memcached directly about the keys it did not list.
    missing = [k for k in keys if k not in where]
    for index, proc in enumerate(backends):
        if not missing:
            break
        answers = ask(proc.addr, [b"".join(b"mg %s\r\n" % k for k in missing) + b"mn\r\n"], b"MN\r\n")
        lines = answers.split(b"\r\n")[:len(missing)]
        for key, line in zip(missing, lines, strict=True):
            if line == b"HD":
                where[key] = index
        missing = [k for k in missing if k not in where]
    return [where.get(k, -1) for k in keys]


class Twemproxy:
    """A nutcracker pool (ketama, md5) over real memcacheds: store keys through it, then ask each
    memcached which keys it holds."""

    def __init__(self, backends: Sequence[Proc], names: Sequence[str | None]) -> None:
        self.backends = list(backends)
        self.dir = Path(tempfile.mkdtemp(prefix="ring-twem-"))
        self.port = free_port()
        servers = []
        for proc, name in zip(backends, names, strict=True):
            servers.append(f"    - {proc.addr}:1" + (f" {name}" if name else ""))
        (self.dir / "nc.yml").write_text(
            "ring:\n"
            f"  listen: 127.0.0.1:{self.port}\n"
            "  hash: md5\n  distribution: ketama\n  auto_eject_hosts: false\n  timeout: 2000\n"
            "  servers:\n" + "\n".join(servers) + "\n")
        self.popen = subprocess.Popen([NUTCRACKER, "-c", str(self.dir / "nc.yml"), "-s", str(free_port()),
                                       "-a", "127.0.0.1", "-o", str(self.dir / "nc.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_connectable(f"127.0.0.1:{self.port}", self.popen)

    def owners(self, keys: Sequence[bytes], batch: int = 500) -> list[int]:
        for proc in self.backends:
            ask(proc.addr, [b"flush_all\r\n"], b"OK\r\n")
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            for i in range(0, len(keys), batch):
                part = keys[i:i + batch]
                s.sendall(b"".join(b"set %s 0 0 1\r\nx\r\n" % k for k in part))
                got = b""
                while got.count(b"\r\n") < len(part):
                    chunk = s.recv(1 << 20)
                    assert chunk, "twemproxy closed the connection"
                    got += chunk
                assert got == b"STORED\r\n" * len(part), got[:200]
        return where_stored(self.backends, keys)

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def ask(addr: str, commands: Sequence[bytes], terminator: bytes) -> bytes:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"".join(commands))
        return recv_until(s, terminator * len(commands) if terminator == b"OK\r\n" else terminator)


def dump_keys(addr: str) -> list[bytes]:
    """Every key memcached at ADDR holds (``lru_crawler metadump all``, which URL-encodes them)."""
    data = ask(addr, [b"lru_crawler metadump all\r\n"], b"END\r\n")
    keys = []
    for line in data.split(b"\n"):
        if line.startswith(b"key="):
            keys.append(urllib.parse.unquote_to_bytes(line.split(b" ", 1)[0][4:]))
    return keys
