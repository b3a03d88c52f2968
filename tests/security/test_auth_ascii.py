"""ASCII authentication against ``memcached -Y authfile``: the proxy with --auth-file answers
every byte stream as memcached 1.6.18 does, before, during and after authentication."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import pytest
from cacheproxy.protocol.asciiauth import AsciiAuth
from cacheproxy.protocol.numbers import safe_strtoul
from cacheproxy.security.authfile import Credentials, parse
from pymemcache.client.base import Client

from tests.security.differential import compare, exchange
from tests.security.support import host_port, metrics, wait_for
from tests.support.procs import start_memcached, start_proxy

AUTHFILE = b"alice:secret\nbob:\ncarol:pw:x\r\ndave:dave pass\n"
AUTH = b"set k 0 0 12\r\nalice secret\r\n"

CASES: dict[str, bytes] = {
    # every command before authentication, text and meta, quit included
    "get": b"get foo\r\n", "gets": b"gets foo\r\n", "quit": b"quit\r\n", "meta get": b"mg foo v\r\n",
    "meta noop": b"mn\r\n", "meta set": b"ms foo 1\r\nx\r\n", "version": b"version\r\n", "stats": b"stats\r\n",
    "flush_all": b"flush_all\r\n", "delete": b"delete foo\r\n", "incr": b"incr foo 1\r\n", "empty line": b"\r\n",
    "bare newline line": b"get foo\n", "add with creds": b"add k 0 0 12\r\nalice secret\r\n",
    "SET upper case": b"SET k 0 0 12\r\nalice secret\r\n",
    # the auth set's line
    "set alone": b"set\r\n", "set 4 tokens": b"set k 0 0\r\n", "set bad length": b"set k 0 0 x\r\n",
    "set negative length": b"set k 0 0 -1\r\n", "set plus length": b"set k 0 0 +12\r\nalice secret\r\n",
    "set extra spaces": b"set  k  0 0 12\r\nalice secret\r\n",
    "set trailing space": b"set k 0 0 12 \r\nalice secret\r\n",
    "set noreply": b"set k 0 0 12 noreply\r\nalice secret\r\nmn\r\n", "set \\n line": b"set k 0 0 12\nalice secret\r\n",
    "set \\r\\r\\n line": b"set k 0 0 12\r\r\nalice secret\r\n",
    "set 25 tokens": b"set k 0 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\r\nx\r\n",
    # the data block
    "right password": AUTH, "wrong password": b"set k 0 0 12\r\nalice secreX\r\n",
    "unknown user": b"set k 0 0 12\r\nmallo secret\r\n", "empty password": b"set k 0 0 6\r\nalice \r\n",
    "empty password entry": b"set k 0 0 4\r\nbob \r\n", "colon in password": b"set k 0 0 10\r\ncarol pw:x\r\n",
    "colon cut short": b"set k 0 0 9\r\ncarol pw:\r\n", "space in password": b"set k 0 0 14\r\ndave dave pass\r\n",
    "extra token": b"set k 0 0 18\r\nalice secret extra\r\n", "leading space": b"set k 0 0 13\r\n alice secret\r\n",
    "double space": b"set k 0 0 13\r\nalice  secret\r\n", "nul in data": b"set k 0 0 12\r\nalice\x00secret\r\n",
    "tab in data": b"set k 0 0 12\r\nalice\tsecret\r\n", "no token": b"set k 0 0 0\r\n\r\n",
    "one token": b"set k 0 0 5 \r\n12345\r\n", "bad termination": b"set k 0 0 12\r\nalice secretXX",
    "short length": b"set k 0 0 10\r\nalice secret\r\n", "data pending": b"set k 0 0 3\r\nabc",
    # pipelining: one answer per read before authentication, memcached's way
    "two gets": b"get a\r\nget b\r\n", "get then auth then get": b"get a\r\n" + AUTH + b"get k\r\n",
    "refused then auth": b"set k 0 0 1\r\nx\r\n" + AUTH + b"get k\r\n",
    "wrong then get": b"set k 0 0 12\r\nalice secreX\r\nget a\r\n", "21 gets": b"get a\r\n" * 21,
    "22 gets": b"get a\r\n" * 22, "45 gets": b"get a\r\n" * 45,
    "25 gets then auth": b"get a\r\n" * 25 + AUTH + b"get k\r\n",
    # after authentication: a normal connection
    "auth then get": AUTH + b"get k\r\n", "auth then quit": AUTH + b"quit\r\nget k\r\n",
    "authenticating twice": AUTH + AUTH + b"get k\r\n", "auth then meta": AUTH + b"mg k v\r\nmn\r\n",
    "auth then two gets": AUTH + b"get k\r\nget k\r\n",
    # sizes: a line over 2048 bytes, a data block over the 16 KB read buffer
    "long line": b"x" * 3000, "long line after get": b"get a\r\n" + b"x" * 3000, "2000 bytes, no newline": b"x" * 2000,
    "data 16382": b"set k 0 0 16382\r\n" + b"y" * 16382 + b"\r\n",
    "data 16383": b"set k 0 0 16383\r\n" + b"y" * 16383 + b"\r\n",
    "data 20000": b"set k 0 0 20000\r\n" + b"y" * 20000 + b"\r\n",
    "get then data too large": b"get a\r\nset k 0 0 16385\r\n" + b"y" * 16385 + b"\r\n",
}
# Not compared: a connection whose first byte is 0x80. memcached -Y reads it as text; the proxy
# gives it the binary protocol's SASL authentication (test_auth_sasl.py).


@pytest.fixture
def targets(tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    direct = start_memcached(args=["-Y", str(path)])
    backend = start_memcached()
    proxy = start_proxy(backend.addr, args=["--auth-file", str(path)])
    yield direct, proxy
    for proc in (proxy, backend, direct):
        proc.stop()


def test_ascii_auth_matches_memcached(targets):
    direct, proxy = targets
    assert compare(direct.addr, proxy.addr, CASES) == []


def test_auth_counted_and_repeated_failures_close(memcached, tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    config = tmp_path / "c.yaml"
    config.write_text("auth_max_failures: 3\n")
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path), "--config", str(config)])
    try:
        wrong = b"set k 0 0 12\r\nalice secreX\r\n"
        with contextlib.closing(Client(host_port(proxy.addr), timeout=5)) as c:
            c._connect()
            sock = c.sock
            answers = []
            for _ in range(3):
                sock.sendall(wrong)
                answers.append(sock.recv(4096))
            assert answers[:2] == [b"CLIENT_ERROR authentication failure\r\n"] * 2
            assert answers[2] == b"CLIENT_ERROR authentication failure\r\n" or answers[2] == b""
            assert sock.recv(4096) == b""  # the third failure closed it
        assert exchange(proxy.addr, AUTH + b"get k\r\n") == b"STORED\r\nEND\r\n"
        m = metrics(f"http://{proxy.extra['admin']}/metrics")
        assert m[("cacheproxy_auth_total", (("protocol", "ascii"), ("result", "failed")))] == 3
        assert m[("cacheproxy_auth_total", (("protocol", "ascii"), ("result", "ok")))] == 1
        assert m[("cacheproxy_errors_total", (("kind", "auth_closed"),))] == 1
    finally:
        proxy.stop()


def test_pymemcache_authenticates_with_a_set(memcached, tmp_path):
    """A stock client authenticates the -Y way: set any key to 'user password'."""
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path)])
    try:
        c = Client(host_port(proxy.addr), timeout=5)
        with pytest.raises(Exception, match="unauthenticated"):
            c.get("k")
        c.close()
        # noreply=False: memcached answers the auth set even with noreply (so does the proxy)
        assert c.set("auth", b"alice secret", noreply=False)
        c.set("k", b"v")
        assert c.get("k") == b"v"
        assert c.get("auth") is None  # the auth set stores nothing
        c.close()
    finally:
        proxy.stop()


def test_unauthenticated_clients_open_no_backend_connection(memcached, tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path)])
    try:
        for _ in range(20):
            assert exchange(proxy.addr, b"get a\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
        m = metrics(f"http://{proxy.extra['admin']}/metrics")
        assert m.get(("cacheproxy_backend_connections", (("backend", "l1"),)), 0) == 0
    finally:
        proxy.stop()


def test_strtoul_and_authfile_rules():
    assert [safe_strtoul(t) for t in (b"12", b"12\r", b"+12", b"-0", b"-1", b"x", b"", b"1x", b"\t7", b"4294967297",
                                  b"1" * 4301, b"0" * 4301 + b"7")] == [
        12, 12, 12, 0, None, None, None, None, 7, 1, None, 7]
    assert parse(b"a:b\nc:d:e\r\nf:\n") == [(b"a", b"b"), (b"c", b"d:e"), (b"f", b"")]
    for bad in (b"a:b\n\nc:d\n", b"nocolon\n", b"a\0:b\n"):
        with pytest.raises(ValueError):
            parse(bad)
    creds = Credentials(parse(AUTHFILE))
    assert creds.check(b"alice", b"secret") and not creds.check(b"alice", b"secre")
    assert not creds.check(b"bob", b"")
    gate = AsciiAuth(creds.check)
    assert gate.feed(b"set k 0 0 12\r\nalice").answers == []  # waits for the rest
    done = gate.feed(b" secret\r\nget k\r\n")
    assert done.authenticated and done.answers == [b"STORED\r\n"] and done.rest == b"get k\r\n"


def test_auth_file_reloaded_and_checked_at_start(memcached, tmp_path):
    path = tmp_path / "authfile"
    path.write_bytes(AUTHFILE)
    proxy = start_proxy(memcached.addr, args=["--auth-file", str(path)])
    try:
        tmp = tmp_path / "authfile.new"
        tmp.write_bytes(b"alice:rotated\n")
        tmp.replace(path)  # polled about once a second; SIGHUP would reload at once
        rotated = b"set k 0 0 13\r\nalice rotated\r\n"
        wait_for(lambda: exchange(proxy.addr, rotated) == b"STORED\r\n", what="the new password accepted")
        assert exchange(proxy.addr, AUTH) == b"CLIENT_ERROR authentication failure\r\n"
        tmp.write_bytes(b"alice:rotated\n\nbroken\n")
        tmp.replace(path)
        proxy.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "does not load" in open(proxy.extra["log"]).read(), what="the bad file reported")
        assert exchange(proxy.addr, rotated) == b"STORED\r\n"  # the previous users stay in force
    finally:
        proxy.stop()
    bad = subprocess.run([sys.executable, "-m", "cacheproxy", "--l1", memcached.addr, "--auth-file", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "malformed" in bad.stderr
