"""Binary SASL PLAIN against ``memcached -S``: the proxy with --auth-file answers binary clients
as memcached 1.6.18 with Cyrus SASL answers them.

Debian's memcached is built with SASL but without memcached's own password file
(MEMCACHED_SASL_PWDB), so -S needs Cyrus's configuration: a ``memcached.conf`` in
``SASL_CONF_PATH`` with ``mech_list: plain`` and a sasldb made with ``saslpasswd2`` (package
sasl2-bin). The users are created in Cyrus's default realm, the host name."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.security import differential as d
from tests.security.differential import compare, exchange
from tests.security.support import host_port, metrics
from tests.support.binary_frames import encode_request
from tests.support.procs import start_proxy, start_sasl_memcached

AUTHFILE = b"alice:secret\n"
OK = d.sasl_auth(b"\0alice\0secret")

CASES: dict[str, bytes] = {
    "list mechs": d.LIST_MECHS, "list then noop": d.LIST_MECHS + d.NOOP,
    "get before auth": d.get(b"zz") + d.NOOP, "noop before auth": d.NOOP, "version before auth": d.VERSION,
    "quit before auth": d.frame(0x07, opaque=4), "stat before auth": d.frame(0x10, opaque=4),
    "unknown opcode before auth": d.frame(0x55, opaque=4) + d.NOOP,
    "bad lengths before auth": d.frame(0x00, b"key", bodylen=1, opaque=4) + d.NOOP,
    "bad extras before auth": d.frame(0x00, b"key", extras=b"12", opaque=4) + d.NOOP,
    "long key before auth": d.get(b"k" * 251) + d.NOOP,
    "auth": OK + d.get(b"zz") + d.NOOP,
    "authzid = user": d.sasl_auth(b"alice\0alice\0secret") + d.NOOP,
    "authzid other": d.sasl_auth(b"bob\0alice\0secret") + d.NOOP,
    "wrong password": d.sasl_auth(b"\0alice\0wrong") + d.NOOP,
    "wrong, wrong, right": d.sasl_auth(b"\0alice\0wrong", 1) + d.sasl_auth(b"\0alice\0wrong", 2)
    + d.sasl_auth(b"\0alice\0secret", 3) + d.NOOP,
    "empty password": d.sasl_auth(b"\0alice\0") + d.NOOP, "one NUL": d.sasl_auth(b"alice\0secret") + d.NOOP,
    "NUL user": d.sasl_auth(b"\0\0secret") + d.NOOP, "trailing NUL": d.sasl_auth(b"\0alice\0secret\0x") + d.NOOP,
    "no data": d.sasl_auth(b"") + d.NOOP,
    "no data then step": d.sasl_auth(b"") + d.sasl_step(b"\0alice\0secret") + d.NOOP,
    "no data then auth": d.sasl_auth(b"", 1) + d.sasl_auth(b"\0alice\0secret", 2) + d.NOOP,
    "step wrong then step": d.sasl_auth(b"") + d.sasl_step(b"\0alice\0bad", 2) + d.sasl_step(b"\0alice\0secret", 3)
    + d.NOOP,
    "step empty": d.sasl_auth(b"") + d.sasl_step(b"") + d.NOOP,
    "failed then step": d.sasl_auth(b"\0alice\0bad") + d.sasl_step(b"\0alice\0secret") + d.NOOP,
    "step alone": d.sasl_step(b"\0alice\0secret") + d.NOOP,
    "step after success": OK + d.sasl_step(b"\0alice\0secret") + d.NOOP,
    "lower-case mech": d.sasl_auth(b"\0alice\0secret", mech=b"plain") + d.NOOP,
    "CRAM-MD5": d.sasl_auth(b"", mech=b"CRAM-MD5") + d.NOOP,
    "unknown mech": d.sasl_auth(b"\0alice\0secret", mech=b"XYZ") + d.NOOP,
    "mech 32 bytes": d.sasl_auth(b"\0alice\0secret", mech=b"P" * 32) + d.NOOP,
    "mech 33 bytes": d.sasl_auth(b"\0alice\0secret", mech=b"P" * 33) + d.NOOP,
    "auth with extras": d.frame(0x21, b"PLAIN", b"\0alice\0secret", extras=b"1234", opaque=1) + d.NOOP,
    "auth without mech": d.frame(0x21, b"", b"\0alice\0secret", opaque=1) + d.NOOP,
    "list with body": d.frame(0x20, b"", b"x", opaque=1) + d.NOOP,
    # authenticating twice, listing after: memcached forgets the first authentication
    "authenticating twice": OK + d.sasl_auth(b"\0alice\0secret", 2) + d.get(b"zz", 3) + d.NOOP,
    "wrong after success": OK + d.sasl_auth(b"\0alice\0bad", 2) + d.get(b"zz", 3) + d.NOOP,
    "list after success": OK + d.LIST_MECHS + d.get(b"zz", 3) + d.NOOP,
    "version after failure": d.sasl_auth(b"\0alice\0bad") + d.VERSION + d.NOOP,
    "auth then set, get, delete": OK + d.set_(b"sk", b"v") + d.get(b"sk") + d.frame(0x04, b"sk", opaque=8) + d.NOOP,
    "auth then quit": OK + d.frame(0x07, opaque=4) + d.NOOP,
    # the data block must fit an unchunked item (-I 1m: 512 KiB)
    "data 524224": d.sasl_auth(b"\0alice\0" + b"s" * (524224 - 7)) + d.NOOP,
    "data 524225": d.sasl_auth(b"\0alice\0" + b"s" * (524225 - 7)) + d.NOOP,
}


@pytest.fixture
def sasl_memcached(tmp_path):
    if not shutil.which("saslpasswd2"):
        pytest.skip("saslpasswd2 (sasl2-bin) not installed")
    conf = tmp_path / "sasl"
    conf.mkdir()
    proc = start_sasl_memcached(conf, "alice", "secret")
    yield proc
    proc.stop()


@pytest.fixture
def sasl_proxy(memcached, tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path)])
    yield proxy
    proxy.stop()


def test_sasl_matches_memcached(sasl_memcached, sasl_proxy):
    assert compare(sasl_memcached.addr, sasl_proxy.addr, CASES) == []
    m = metrics(f"http://{sasl_proxy.extra['admin']}/metrics")
    assert m[("cacheproxy_auth_total", (("protocol", "sasl"), ("result", "ok")))] >= 10
    assert m[("cacheproxy_auth_total", (("protocol", "sasl"), ("result", "failed")))] >= 10


def test_repeated_sasl_failures_close(memcached, tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    config = tmp_path / "c.yaml"
    config.write_text("auth_max_failures: 2\n")
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path), "--config", str(config)])
    try:
        bad = d.sasl_auth(b"\0alice\0bad")
        out = exchange(proxy.addr, bad + bad + OK + d.NOOP)
        assert out.count(b"Auth failure.") == 2 and out.endswith(d.CLOSED) and b"Authenticated" not in out
    finally:
        proxy.stop()


@pytest.mark.skipif(not shutil.which("memccp"), reason="libmemcached-tools not installed")
def test_libmemcached_tools_with_sasl(sasl_proxy, tmp_path):
    """libmemcached's tools (Debian's memccp/memccat, built with SASL) authenticate with SASL PLAIN."""
    servers = f"--servers={sasl_proxy.addr}"
    item = tmp_path / "item"
    item.write_bytes(b"hello")
    creds = ["--binary", "--username=alice", "--password=secret"]
    subprocess.run(["memccp", servers, *creds, str(item)], check=True, timeout=20, capture_output=True)
    out = subprocess.run(["memccat", servers, *creds, "item"], capture_output=True, timeout=20)
    assert out.returncode == 0 and out.stdout.startswith(b"hello")
    refused = subprocess.run(["memccat", servers, "--binary", "--username=alice", "--password=nope", "item"],
                             capture_output=True, timeout=20)
    assert refused.returncode != 0 and b"AUTHENTICATION FAILURE" in refused.stderr
    anonymous = subprocess.run(["memccat", servers, "--binary", "item"], capture_output=True, timeout=20)
    assert anonymous.returncode != 0 and b"hello" not in anonymous.stdout


def test_binary_client_without_auth_file_unchanged(memcached):
    """Without --auth-file the SASL opcodes stay "Unknown command", as memcached without -S."""
    proxy = start_proxy(memcached.addr)
    try:
        with socket.create_connection(host_port(proxy.addr), timeout=10) as s:
            s.sendall(encode_request(0x20, opaque=7))
            assert s.recv(4096)[6:8] == b"\x00\x81"
    finally:
        proxy.stop()
