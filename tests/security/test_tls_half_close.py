"""A TLS client that ends its input after its requests, with a ``close_notify`` or with a bare TCP
FIN (``printf ... | openssl s_client -quiet``), gets every answer memcached gives it for those
requests, and then the close: the proxy's close_notify and the end of the socket.

The reference is memcached itself with TLS (``memcached -Z``), sent the same bytes."""

from __future__ import annotations

import contextlib
import socket
import ssl

import pytest

from tests.security.support import host_port, tls_args
from tests.support.binary_frames import encode_request
from tests.support.procs import start_memcached

PIPELINED = b"".join(b"set hc%d 0 0 3\r\nv%02d\r\n" % (i, i % 100) for i in range(700)) + \
    b"".join(b"get hc%d\r\n" % i for i in range(700))  # more than the proxy reads before pausing
MIXED = b"set hm 5 0 2\r\nhi\r\nget hm nothere\r\nmg hm v f t\r\nincr hm 1\r\nmn\r\ndelete hm\r\nget hm\r\n"
CUT_OFF = b"set hx 0 0 1\r\nx\r\nget hx\r\nset hy 0 0 5\r\nab"  # the last request never finishes
BINARY = encode_request(0x00, b"missing", opaque=1) + encode_request(0x0A, opaque=2)
SCRIPTS = {"pipelined": PIPELINED, "mixed": MIXED, "cut-off": CUT_OFF, "binary": BINARY}

CLOSE_NOTIFY = b"<close_notify>"


def half_closed(addr: str, data: bytes, context: ssl.SSLContext, end: str, timeout: float = 10.0) -> bytes:
    """Send DATA over TLS, end the input (END: ``close_notify`` or ``fin``) and read until the
    socket closes: the plaintext answers, then CLOSE_NOTIFY if the server sent one."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(host_port(addr), timeout=timeout) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(data)
        if end == "close_notify":
            with contextlib.suppress(ssl.SSLWantReadError):  # the server's comes after its answers
                tls.unwrap()  # writes our close_notify
        sock.sendall(outgoing.read())
        if end == "fin":
            sock.shutdown(socket.SHUT_WR)
        out = bytearray()
        while chunk := sock.recv(65536):
            incoming.write(chunk)
            while True:
                try:
                    plain = tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    plain = b""
                if not plain:
                    return bytes(out) + CLOSE_NOTIFY
                out += plain
        return bytes(out)


@pytest.fixture(scope="module")
def memcached_tls(tmp_path_factory):
    from tests.security.certs import Authority

    ca = Authority(str(tmp_path_factory.mktemp("pki")))
    server = ca.issue("server")
    proc = start_memcached(args=["-Z", "-o", f"ssl_chain_cert={server.cert},ssl_key={server.key}"])
    yield proc
    proc.stop()


@pytest.mark.parametrize("end", ["close_notify", "fin"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_tls_client_ending_its_input_gets_every_answer(script: str, end: str, pki, launch, memcached_tls) -> None:
    proxy = launch(*tls_args(pki))
    unverified = pki.client_context(verify=False)
    expected = half_closed(memcached_tls.addr, SCRIPTS[script], unverified, "close_notify")
    assert expected.endswith(CLOSE_NOTIFY), "memcached itself did not answer and close"
    got = half_closed(proxy.addr, SCRIPTS[script], unverified, end)
    assert got == expected
    assert proxy.popen.poll() is None
