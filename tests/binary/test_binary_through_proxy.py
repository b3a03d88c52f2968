"""Differential through the real proxy: binary bytes to memcached A directly and to the proxy
in front of memcached B must get the same answers (CAS aside); plus text and binary clients
side by side on one port."""

from __future__ import annotations

import signal

import pytest
from cacheproxy.protocol.binary import Op

from tests.binary.harness import normalise, run_script
from tests.binary.scripts import CLOSING, SCRIPTS
from tests.support.binary_frames import encode_request, parse_frames
from tests.support.procs import connect, recv_until, start_memcached, start_proxy


@pytest.fixture(scope="module")
def servers():
    a, b = start_memcached(), start_memcached()
    proxy = start_proxy(b.addr)
    yield a, b, proxy
    proxy.stop()
    for proc in (a, b):
        proc.popen.send_signal(signal.SIGTERM)
    a.stop()
    b.stop()


def flush(addr: str) -> None:
    with connect(addr) as s:
        s.sendall(b"flush_all\r\n")
        assert recv_until(s, b"\r\n") == b"OK\r\n"


def run_both(addr_a: str, addr_b: str, steps) -> None:
    for blob, got_a, got_b, closed_a, closed_b in run_script(addr_a, addr_b, steps, b_direct=True):
        assert normalise(got_b) == normalise(got_a), f"step {blob[:60]!r}"
        assert closed_b == closed_a, f"close differs after {blob[:60]!r}"


# Stat answers depend on each server's history (slab classes used so far), not on the protocol:
# their shape is compared in test_binary_vs_memcached.py against two fresh servers.
@pytest.mark.parametrize("name", sorted(n for n in SCRIPTS if "stat" not in n))
def test_binary_script_through_proxy(servers, name):
    a, b, proxy = servers
    flush(a.addr)
    flush(b.addr)
    run_both(a.addr, proxy.addr, SCRIPTS[name])


@pytest.mark.parametrize("name", sorted(CLOSING))
def test_closing_input_through_proxy(servers, name):
    a, _, proxy = servers
    run_both(a.addr, proxy.addr, CLOSING[name])


def test_text_and_binary_clients_side_by_side(servers):
    _, _, proxy = servers
    text, binary = connect(proxy.addr), connect(proxy.addr)
    text.sendall(b"set shared 5 0 4\r\ntext\r\n")
    assert recv_until(text, b"\r\n") == b"STORED\r\n"
    binary.sendall(encode_request(Op.GET, key=b"shared", opaque=7))
    frames, _ = parse_frames(recv_until(binary, b"text"))
    assert frames[0][1] == 0 and frames[0][6] == b"text" and frames[0][4] == (5).to_bytes(4, "big")
    binary.sendall(encode_request(Op.SET, key=b"shared", value=b"bin", extras=(0).to_bytes(4, "big") * 2))
    response = b""
    while len(response) < 24:  # a set's answer is one 24-byte header, no body
        response += binary.recv(24 - len(response))
    assert parse_frames(response)[0][0][1] == 0
    text.sendall(b"get shared\r\n")
    assert recv_until(text, b"END\r\n") == b"VALUE shared 0 3\r\nbin\r\nEND\r\n"
    text.close()
    binary.close()
