"""TLS on the client port: real clients (pymemcache, openssl s_client), the plaintext port beside
it, and the clients that must be closed within the handshake timeout without holding anything."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from pymemcache.client.base import Client

from tests.security.support import handshakes, host_port, metrics, request, tls_args, tls_connect, wait_for


def test_pymemcache_over_tls_and_plain_port(pki, launch):
    from tests.support.procs import free_port

    plain = f"127.0.0.1:{free_port()}"
    proxy = launch(*tls_args(pki), "--plain-listen", plain)
    tls_client = Client(host_port(proxy.addr), timeout=5, tls_context=pki.client_context())
    tls_client.set("greeting", b"hello")
    assert tls_client.get("greeting") == b"hello"
    plain_client = Client(host_port(plain), timeout=5)
    assert plain_client.get("greeting") == b"hello"  # the same cache, without TLS
    plain_client.close()
    tls_client.close()
    assert handshakes(proxy.extra["admin"], "ok") >= 1


def test_tls13_preferred_tls12_accepted(pki, launch):
    proxy = launch(*tls_args(pki))
    with tls_connect(proxy.addr, pki.client_context()) as s:
        assert s.version() == "TLSv1.3"
        assert request(s, b"version\r\n").startswith(b"VERSION ")
    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(proxy.addr, ctx) as s:
        assert s.version() == "TLSv1.2"
        assert request(s, b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_old_protocol_refused_and_counted(pki, launch):
    proxy = launch(*tls_args(pki))
    ctx = ssl._create_unverified_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL offer TLS 1.1 at all
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(proxy.addr, ctx).close()
    wait_for(lambda: handshakes(proxy.extra["admin"], "failed") >= 1, what="a failed handshake counted")


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI not installed")
def test_openssl_s_client(pki, launch):
    proxy = launch(*tls_args(pki))
    out = subprocess.run(["openssl", "s_client", "-quiet", "-connect", proxy.addr, "-CAfile", pki.ca.ca_file,
                          "-verify_return_error", "-tls1_3"],
                         input=b"set k 0 0 2\r\nhi\r\nget k\r\nquit\r\n", capture_output=True, timeout=20)
    assert out.stdout == b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n", out.stderr


def test_plaintext_client_on_tls_port_closed(pki, launch):
    proxy = launch(*tls_args(pki))
    started = time.monotonic()
    with socket.create_connection(host_port(proxy.addr), timeout=10) as s:
        s.sendall(b"get foo\r\n")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
    assert b"END" not in data and b"VALUE" not in data  # never served in plaintext
    assert time.monotonic() - started < 5
    wait_for(lambda: handshakes(proxy.extra["admin"], "failed") >= 1, what="a failed handshake counted")


def test_stalled_handshakes_closed_within_timeout_and_hold_nothing(pki, launch):
    """200 clients that connect and never say hello: all closed once tls_handshake_timeout (1 s)
    has passed, none becomes a client connection, each is counted as a failed handshake."""
    proxy = launch(*tls_args(pki), config="tls_handshake_timeout: 1.0\n")
    socks = [socket.create_connection(host_port(proxy.addr), timeout=10) for _ in range(200)]
    started = time.monotonic()
    try:
        m = metrics(f"http://{proxy.extra['admin']}/metrics")
        assert m[("cacheproxy_client_connections", ())] == 0
        for s in socks:
            s.settimeout(max(0.1, started + 6 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1) == b""  # closed by the proxy
        assert time.monotonic() - started < 6
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: handshakes(proxy.extra["admin"], "failed") >= 200, what="200 failed handshakes counted")
    m = metrics(f"http://{proxy.extra['admin']}/metrics")
    assert m[("cacheproxy_client_connections", ())] == 0
    assert m.get(("cacheproxy_tls_handshakes_total", (("result", "ok"),)), 0) == 0


def test_flags_and_config_validation(pki, tmp_path):
    from cacheproxy.config import load

    with pytest.raises(ValueError, match="go together"):
        load(None, {"tls_cert": pki.server.cert})
    with pytest.raises(ValueError, match="need tls_cert"):
        load(None, {"tls_ca": pki.ca.ca_file})
    with pytest.raises(ValueError, match="not a readable file"):
        load(None, {"tls_cert": str(tmp_path / "missing"), "tls_key": pki.server.key})
    cfg = load(None, {"tls_cert": pki.server.cert, "tls_key": pki.server.key, "tls_ca": pki.ca.ca_file})
    assert cfg.tls_enabled and cfg.tls_handshake_timeout == 10.0 and cfg.auth_file is None
