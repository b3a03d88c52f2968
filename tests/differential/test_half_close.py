"""A client that shuts down its sending side after its requests (``printf ... | nc -N``) gets every
answer memcached gives it, byte for byte, and then the close: in every layout."""

from __future__ import annotations

import socket

import pytest

from tests.differential.layouts import LAYOUTS, LayoutTarget
from tests.differential.test_matrix import layout_target
from tests.support.binary_frames import encode_request
from tests.support.procs import connect

TEXT = (b"set a 0 0 1\r\nx\r\nget a\r\nget nothere\r\nadd a 0 0 1\r\ny\r\nincr n 1\r\n"
        b"mg a v f\r\nmn\r\ndelete a\r\nget a b c\r\n")
PIPELINED = b"".join(b"set k%d 0 0 3\r\nv%02d\r\n" % (i, i % 100) for i in range(300)) + \
    b"".join(b"get k%d\r\n" % i for i in range(300))
CUT_OFF = b"set a 0 0 1\r\nx\r\nget a\r\nset b 0 0 5\r\nab"  # the last request never finishes
# binary answers carry CAS values, which differ between two memcacheds: requests whose answers do not
BINARY = encode_request(0x00, b"missing", opaque=1) + encode_request(0x04, b"missing", opaque=2) + \
    encode_request(0x0A, opaque=3)

SCRIPTS = {"text": TEXT, "pipelined": PIPELINED, "cut-off": CUT_OFF, "binary": BINARY}


def half_closed(addr: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send DATA, shut down the sending side, read until the server closes (EOF)."""
    with connect(addr, timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_half_closed_client_gets_every_answer(script: str, layout: str, direct: LayoutTarget,
                                              layouts: dict[str, LayoutTarget]) -> None:
    proxy = layout_target(layouts, layout)
    answers = []
    for target in (direct, proxy):
        target.reset()
        answers.append(half_closed(target.addr, SCRIPTS[script]))
    assert answers[0], "memcached itself answered nothing"
    assert answers[1] == answers[0]
    assert proxy.alive()
