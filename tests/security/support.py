"""Helpers shared by the security tests."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def tls_args(pki, *, ca: bool = False) -> list[str]:
    args = ["--tls-cert", pki.server.cert, "--tls-key", pki.server.key]
    if ca:
        args += ["--tls-ca", pki.ca.ca_file]
    return args


def host_port(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def metrics(url: str, context: ssl.SSLContext | None = None) -> dict:
    with urllib.request.urlopen(url, timeout=5, context=context) as r:
        body = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def handshakes(admin: str, result: str) -> float:
    return metrics(f"http://{admin}/metrics").get(("cacheproxy_tls_handshakes_total", (("result", result),)), 0)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def tls_connect(addr: str, ctx: ssl.SSLContext, timeout: float = 5.0) -> ssl.SSLSocket:
    raw = socket.create_connection(host_port(addr), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def request(sock: socket.socket, data: bytes, terminator: bytes = b"\r\n") -> bytes:
    """Send DATA, read until the reply ends with TERMINATOR; b'' if the server closes first."""
    sock.sendall(data)
    buf = b""
    while not buf.endswith(terminator):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def refused(sock_factory) -> bool:
    """True when the server refuses the TLS client: the handshake or the first exchange fails
    (with TLS 1.3 a client learns that its certificate was refused only when it next reads)."""
    try:
        sock = sock_factory()
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        return request(sock, b"version\r\n") == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    finally:
        sock.close()


def http_status(url: str, context: ssl.SSLContext | None = None) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
